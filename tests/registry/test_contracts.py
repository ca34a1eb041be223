"""Handoff contracts: schema checks at registration, and pointers to the field at fault."""

from __future__ import annotations

import pytest

from registry.contracts import ContractInvalid, check_contracts, schema_problem, violation

ORDER = {
    "type": "object",
    "required": ["sku", "lines"],
    "properties": {
        "sku": {"type": "string"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
    },
    "$defs": {"line": {"type": "object", "required": ["qty"], "properties": {"a/b": {}}}},
}


@pytest.mark.parametrize(
    ("data", "pointer", "words"),
    [
        ({"lines": []}, "/sku", "'sku' is a required property"),
        ({"sku": 5, "lines": []}, "/sku", "not of type 'string'"),
        ({"sku": "x", "lines": [{"qty": 1}, {}]}, "/lines/1/qty", "'qty' is a required"),
        ("nope", "", "not of type 'object'"),
    ],
)
def test_a_violation_points_at_the_field(data: object, pointer: str, words: str) -> None:
    found = violation(ORDER, data)
    assert found is not None
    assert found.pointer == pointer
    assert words in found.message


def test_matching_data_has_no_violation() -> None:
    assert violation(ORDER, {"sku": "x", "lines": [{"qty": 1}]}) is None


def test_pointers_escape_per_rfc_6901() -> None:
    schema = {"properties": {"a/b": {"properties": {"c~d": {"type": "integer"}}}}}
    found = violation(schema, {"a/b": {"c~d": "x"}})
    assert found is not None and found.pointer == "/a~1b/c~0d"


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "bogus"}, "not a valid JSON Schema at /type"),
        ({"properties": {"x": {"$ref": "http://example.com/x"}}}, "only references inside"),
        (True, "JSON Schema object"),
        ({"description": "x" * 70_000}, "larger than"),
    ],
)
def test_unusable_schemas_are_refused(schema: object, words: str) -> None:
    problem = schema_problem(schema)
    assert problem is not None and words in problem


def test_a_contract_must_be_for_a_declared_skill() -> None:
    check_contracts({"work": ORDER}, ["work"])
    with pytest.raises(ContractInvalid) as refused:
        check_contracts({"work": ORDER, "play": {}}, ["work"])
    assert refused.value.problems == [("play", "the card declares no such skill")]
