"""Flow expressions on their own (`gateway.flows.expressions`): what an
expression reads, what shape its value has, and whether one shape fits
another -- the facts registration's checks are built on."""

from __future__ import annotations

import pytest

from gateway.flows.expressions import (
    ExpressionInvalid,
    Reference,
    evaluate,
    fits,
    references,
    shape,
)


@pytest.mark.parametrize(
    ("expression", "read"),
    [
        ("input.order", [Reference("input")]),
        ("steps.quote.output.total", [Reference("steps", "quote")]),
        ("steps", [Reference("steps")]),
        ("run.user", [Reference("run")]),
        ("{a: input.x, b: steps.s1.text}", [Reference("input"), Reference("steps", "s1")]),
        # Inside a projection or filter, names are the elements' fields, not roots.
        ("input.items[*].sku", [Reference("input")]),
        ("input.items[?qty > `1`].sku", [Reference("input")]),
        ("steps.a.output | length(@)", [Reference("steps", "a")]),
        ("sort_by(input.items, &price)", [Reference("input")]),
        ("`3`", []),
        ("nobody.knows", [Reference("nobody")]),
    ],
)
def test_references_are_the_roots_read_from_the_context(
    expression: str, read: list[Reference]
) -> None:
    assert references(expression) == read


def test_an_expression_that_does_not_compile_is_invalid_in_one_line() -> None:
    with pytest.raises(ExpressionInvalid) as raised:
        references("input.[")
    assert "\n" not in str(raised.value)


def test_evaluate_reads_the_run_context() -> None:
    context = {"input": {"n": 2}, "steps": {"a": {"output": {"total": 7}}}, "run": {"id": "r"}}
    assert evaluate("steps.a.output.total", context) == 7
    assert evaluate("{n: input.n, run: run.id}", context) == {"n": 2, "run": "r"}
    assert evaluate("steps.missing.output", context) is None


ORDER = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "qty": {"type": "integer"}},
    "required": ["id"],
}


def test_shape_of_a_field_path_descends_the_known_schemas() -> None:
    known = {"input": ORDER, "steps.quote.output": {"type": "number"}}
    assert shape("input.qty", known) == {"type": "integer"}
    assert shape("input", known) == ORDER
    assert shape("steps.quote.output", known) == {"type": "number"}
    assert shape("input.nope", known) is None
    assert shape("steps.other.output", known) is None


def test_shape_of_an_object_of_paths_has_exactly_its_keys() -> None:
    produced = shape("{order: input.id, n: input.qty, x: steps.s.output}", {"input": ORDER})
    assert produced == {
        "type": "object",
        "properties": {"order": {"type": "string"}, "n": {"type": "integer"}, "x": {}},
        "required": ["n", "order", "x"],
        "x-exact-keys": True,
    }


@pytest.mark.parametrize(
    ("expression", "wanted"),
    [
        ("`1`", "integer"),
        ("`1.5`", "number"),
        ("'a'", "string"),
        ("`true`", "boolean"),
        ("`null`", "null"),
        ("`[1]`", "array"),
        ('`{"a": 1}`', "object"),
    ],
)
def test_shape_of_a_literal_is_its_json_type(expression: str, wanted: str) -> None:
    assert shape(expression, {}) == {"type": wanted}


def test_shape_of_anything_else_is_unknown() -> None:
    assert shape("length(input.items)", {"input": ORDER}) is None
    assert shape("input.items[*].sku", {"input": ORDER}) is None


@pytest.mark.parametrize(
    ("produced", "wanted", "ok"),
    [
        ({"type": "integer"}, {"type": "number"}, True),
        ({"type": "number"}, {"type": "integer"}, False),
        ({"type": "string"}, {"type": ["string", "null"]}, True),
        ({"type": ["string", "null"]}, {"type": "string"}, False),
        ({}, {"type": "string"}, True),  # unknown fits
        ({"type": "object"}, {}, True),
    ],
)
def test_fits(produced: dict[str, object], wanted: dict[str, object], ok: bool) -> None:
    assert fits(produced, wanted) is ok
