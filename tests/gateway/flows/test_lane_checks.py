"""What registration says of a parallel branch's or a map item's own steps
(`gateway.flows.lane_checks`, `gateway.flows.placement`): every problem
named with its step and field, and a sound document with none."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.flows.definition import FlowDocument
from gateway.flows.documents import DocumentInvalid, validate
from tests.gateway.flows.test_checks import flow, problems, said

SUPPORT = {"agent": "support"}


def _lanes(
    *lane: dict[str, Any], other: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    branches = [{"id": "b", "steps": list(lane), **extra}]
    branches.append(other or {"id": "c", "call": SUPPORT, "message": "'c'"})
    return {"id": "both", "parallel": {"branches": branches}}


def _map(*steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"id": "each", "map": {"over": "input.items", "steps": list(steps), **spec}}


def test_a_sound_document_with_sequences_has_no_problems() -> None:
    document = flow(
        _lanes(
            {"id": "ask", "call": SUPPORT, "message": "input.sku"},
            {
                "id": "size",
                "route": [{"when": "steps.ask.text == 'small'", "goto": "end"}, {"goto": "last"}],
            },
            {"id": "skipped_over", "call": SUPPORT, "message": "'never'"},
            {"id": "last", "call": SUPPORT, "message": "steps.ask.text"},
            output="{said: steps.last.text, first: steps.ask.text}",
        ),
        _map(
            {"id": "one", "call": SUPPORT, "message": "item.name", "when": "index > `0`"},
            {"id": "two", "call": SUPPORT, "message": "steps.one.text"},
            output="{index: index, said: steps.two.text}",
        ),
        # After the parallel step, a branch's steps are read as any step's.
        {"id": "after", "call": SUPPORT, "message": "steps.last.text", "when": "steps.each.output"},
    )
    assert problems(document) == []


def test_a_sequences_route_goes_forward_inside_it_only() -> None:
    document = flow(
        {"id": "first", "call": SUPPORT, "message": "'a'"},
        _lanes(
            {"id": "x", "call": SUPPORT, "message": "'x'"},
            {
                "id": "r",
                "route": [
                    {"when": "`true`", "goto": "x"},  # back
                    {"when": "`true`", "goto": "first"},  # out of the branch
                    {"when": "`true`", "goto": "c"},  # to the other branch
                    {"goto": "y"},
                ],
                "max": 2,
            },
            {"id": "y", "call": SUPPORT, "message": "'y'"},
        ),
    )
    found = said(problems(document))
    assert ("r", "steps[1].parallel.branches[0].steps[1].max") in found
    for case in (0, 1, 2):
        assert ("r", f"steps[1].parallel.branches[0].steps[1].route[{case}].goto") in found
    assert ("r", "steps[1].parallel.branches[0].steps[1].route[3].goto") not in found
    # A top-level route does not go into a branch's steps either.
    inward = flow(
        {"id": "r", "route": [{"goto": "x"}]},
        _lanes({"id": "x", "call": SUPPORT, "message": "'x'"}),
    )
    assert ("r", "steps[0].route[0].goto") in said(problems(inward))


def test_what_a_sequences_steps_may_read() -> None:
    document = flow(
        _lanes(
            {"id": "x", "call": SUPPORT, "message": "steps.y.text"},  # a later step of its own
            {"id": "y", "call": SUPPORT, "message": "steps.c.text"},  # the other branch
            output="steps.both.output",  # its own parallel step
        ),
        _map(
            {"id": "one", "call": SUPPORT, "message": "item"},
            output="steps.two.text",  # not a step of the item
        ),
        {"id": "two", "call": SUPPORT, "message": "steps.one.text"},  # inside the map's items
        output="steps.one.output",
    )
    found = problems(document)
    fields = said(found)
    assert ("x", "steps[0].parallel.branches[0].steps[0].message") in fields
    assert ("y", "steps[0].parallel.branches[0].steps[1].message") in fields
    assert ("b", "steps[0].parallel.branches[0].output") in fields
    assert ("each", "steps[1].map.output") in fields
    inside = [p for p in found if p["field"] in ("steps[2].message", "output")]
    assert len(inside) == 2 and all("steps.each.output" in p["message"] for p in inside), found
    # A branch's steps do not read item: that is a map item's.
    itemless = flow(_lanes({"id": "x", "call": SUPPORT, "message": "item.name"}))
    assert said(problems(itemless)) == [("x", "steps[0].parallel.branches[0].steps[0].message")]


def test_ids_are_unique_across_sequences_and_fit_an_items_record() -> None:
    twice = flow(
        {"id": "x", "call": SUPPORT, "message": "'a'"},
        _lanes({"id": "x", "call": SUPPORT, "message": "'x'"}),
    )
    assert said(problems(twice)) == [("x", "steps[1].parallel.branches[0].steps[0].id")]
    long_map = {
        "id": "m" * 40,
        "map": {"over": "input.items", "steps": [{"id": "s" * 20, "call": SUPPORT}]},
    }
    assert said(problems(flow(long_map))) == [("m" * 40, "steps[0].map.steps[0].id")]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"call": SUPPORT, "steps": [{"id": "a", "call": SUPPORT}]},
            "exactly one of call or steps",
        ),
        ({}, "exactly one of call or steps"),
        (
            {"steps": [{"id": "a", "call": SUPPORT}], "input": "item"},
            "each step says its own input",
        ),
        ({"steps": [{"id": "a", "call": SUPPORT}], "retries": 1}, "its own retries"),
        ({"call": SUPPORT, "output": "item"}, "output goes with steps"),
        ({"steps": []}, "at least 1 item"),
        ({"steps": [{"id": "a", "wait": {"event": "e"}}]}, "exactly one of call or route"),
    ],
)
def test_what_a_maps_schema_refuses(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        flow({"id": "m", "map": {"over": "input.items", **spec}})


def test_what_a_branchs_schema_refuses() -> None:
    both = {"id": "b", "call": SUPPORT, "steps": [{"id": "a", "call": SUPPORT}]}
    with pytest.raises(ValidationError, match="exactly one of call or steps"):
        flow(_lanes(other=both))
    checkpoint = {"id": "b", "steps": [{"id": "a", "checkpoint": {"prompt": "ok?"}}]}
    with pytest.raises(ValidationError, match="exactly one of call or route"):
        flow({"id": "p", "parallel": {"branches": [checkpoint, {"id": "c", "call": SUPPORT}]}})
    asks = {"id": "b", "steps": [{"id": "a", "call": SUPPORT}], "on_error": "checkpoint"}
    with pytest.raises(ValidationError, match="on_error"):
        flow({"id": "p", "parallel": {"branches": [asks, {"id": "c", "call": SUPPORT}]}})
    assert isinstance(flow(_lanes({"id": "a", "call": SUPPORT})), FlowDocument)


def test_in_a_loop_a_branch_reads_no_sibling_and_a_sequence_asks_no_review() -> None:
    """In a route's loop a later step reads as the round before's output --
    but not from inside a fan-out of the same step, where a sibling may be
    running at that very time (what is read would depend on which finished
    first, and a replay could read otherwise)."""
    document = flow(
        {"id": "draft", "call": SUPPORT, "message": "'d'"},
        _lanes(
            {"id": "x", "call": SUPPORT, "message": "'x'", "on_error": "checkpoint"},
            {"id": "gate", "route": [{"when": "steps.c.output.ok", "goto": "end"}]},
            {"id": "y", "call": SUPPORT, "message": "steps.later.text"},
        ),
        {"id": "later", "call": SUPPORT, "message": "steps.c.text"},
        {"id": "again", "route": [{"when": "steps.again == `null`", "goto": "draft"}], "max": 2},
    )
    found = said(problems(document))
    lane = "steps[1].parallel.branches[0]"
    assert ("x", f"{lane}.steps[0].on_error") in found
    assert ("gate", f"{lane}.steps[1].route[0].when") in found  # a sibling branch
    # A later top-level step of the loop is read as its round before's, as anywhere.
    assert ("y", f"{lane}.steps[2].message") not in found
    assert ("again", "steps[3].route[0].when") not in found


def test_a_schema_error_inside_a_sequence_names_the_documents_own_path() -> None:
    """The kinds pydantic's tagged unions put in an error's location (a
    branch's ``steps`` or ``call``, a step's kind) are not the document's."""
    document = {
        "format": "switchboard.flow/v1",
        "id": "order-flow",
        "name": "order",
        "steps": [
            _lanes({"id": "x", "call": SUPPORT}, {"id": "y", "call": SUPPORT, "retries": -1}),
            _map({"id": "z", "route": [{"goto": "end"}], "max": 0}),
        ],
    }
    with pytest.raises(DocumentInvalid) as refused:
        validate(document)
    fields = {(e["step"], e["field"]) for e in refused.value.errors}
    assert ("y", "steps[0].parallel.branches[0].steps[1].retries") in fields
    assert ("z", "steps[1].map.steps[0].max") in fields
