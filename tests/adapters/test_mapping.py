"""The REST webhook mapping language: templates, selectors, bounds, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.mapping import (
    MAX_MAPPING_BYTES,
    MappingFailed,
    MappingInvalid,
    compile_mapping,
    parse_selector,
    render,
    select,
)

VALUES: dict[str, Any] = {
    "text": "hello",
    "skill": "lookup",
    "task_id": "t-1",
    "context_id": "c-1",
    "data": {"customer_id": "c-42", "n": 3, "items": [{"sku": "a"}, {"sku": "b"}], "flag": False},
}


def test_a_whole_placeholder_keeps_the_json_type() -> None:
    template = {"n": "{{data.n}}", "items": "{{data.items}}", "flag": "{{data.flag}}"}
    assert render(template, VALUES) == {
        "n": 3,
        "items": [{"sku": "a"}, {"sku": "b"}],
        "flag": False,
    }


def test_placeholders_inside_text_are_text() -> None:
    assert render("Ticket {{data.customer_id}} x{{data.n}}: {{text}}", VALUES) == (
        "Ticket c-42 x3: hello"
    )
    assert render("{{ data.items.1.sku }}", VALUES) == "b"
    assert render(["{{skill}}", 7, None, {"t": "{{task_id}}"}], VALUES) == [
        "lookup",
        7,
        None,
        {"t": "t-1"},
    ]


def test_a_missing_value_is_an_error_unless_optional() -> None:
    with pytest.raises(MappingFailed, match=r"\{\{data.missing\}\}"):
        render({"x": "{{data.missing}}"}, VALUES)
    with pytest.raises(MappingFailed):
        render("{{data.items.9.sku}}", VALUES)
    assert render({"x": "{{data.missing?}}", "y": "a{{data.missing?}}b"}, VALUES) == {
        "x": None,
        "y": "ab",
    }


@pytest.mark.parametrize(
    "template",
    [
        "{{__import__('os')}}",
        "{{data['x']}}",
        "{{text.upper}}",
        "{{env.HOME}}",
        "{{data..x}}",
        "{{data.x + 1}}",
        "{{}}",
    ],
)
def test_anything_but_a_path_is_refused_at_registration(template: str) -> None:
    with pytest.raises(MappingInvalid):
        compile_mapping({"request": {"body": {"q": template}}})


@pytest.mark.parametrize(
    ("selector", "steps"),
    [
        ("$", ()),
        ("$.answer", ("answer",)),
        ("$.a[0].b", ("a", 0, "b")),
        ("$['with space'][2]", ("with space", 2)),
    ],
)
def test_selectors(selector: str, steps: tuple[Any, ...]) -> None:
    assert parse_selector(selector) == steps


@pytest.mark.parametrize(
    "selector",
    ["answer", "$..answer", "$.a[*]", "$.a[?(@.x)]", "$.a[-1]", "$[0:2]", "$.a.", "$.()"],
)
def test_only_simple_selectors(selector: str) -> None:
    with pytest.raises(MappingInvalid):
        parse_selector(selector)


def test_select_finds_or_says_what_is_missing() -> None:
    document = {"a": [{"b": 1}], "c": None}
    assert select(document, ("a", 0, "b"), "$.a[0].b") == 1
    assert select(document, ("c",), "$.c") is None
    with pytest.raises(MappingFailed, match=r"\$\.a\[1\]"):
        select(document, ("a", 1), "$.a[1]")
    with pytest.raises(MappingFailed):
        select(document, ("a", "b"), "$.a.b")


def test_the_mapping_shape_is_checked() -> None:
    bad: dict[str, Any]
    for bad in (
        {"requests": {}},
        {"request": {"bdy": {}}},
        {"request": {"headers": {"Authorization": "{{text}}"}}},
        {"request": {"query": {"q": 1}}},
        {"response": {"text": 1}},
        {"response": {"html": "$.x"}},
    ):
        with pytest.raises(MappingInvalid):
            compile_mapping(bad)


def test_sizes_are_bounded() -> None:
    with pytest.raises(MappingInvalid, match="larger"):
        compile_mapping({"request": {"body": {"x": "y" * MAX_MAPPING_BYTES}}})
    deep: Any = "{{text}}"
    for _ in range(40):
        deep = {"d": deep}
    with pytest.raises(MappingInvalid, match="deeper"):
        compile_mapping({"request": {"body": deep}})
    with pytest.raises(MappingFailed, match="larger"):
        render(["{{text}}"] * 3, {"text": "x" * 400_000})


def test_a_compiled_mapping() -> None:
    compiled = compile_mapping(
        {
            "request": {"body": {"q": "{{text}}"}, "query": {"l": "{{data.lang?}}"}},
            "response": {"text": "$.answer", "data": "$.details"},
        }
    )
    assert compiled.text == ("answer",) and compiled.data == ("details",)
    assert compiled.query == {"l": "{{data.lang?}}"}
