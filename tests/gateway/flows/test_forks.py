"""Where a fork starts (`gateway.flows.forks`): the flow's steps mapped onto
the operations DBOS recorded, and what may be forked, without an engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.flows.answerers import question_step
from gateway.flows.definition import CallStep, FlowDocument
from gateway.flows.fork_positions import owner_of, reused_records, start_position, step_indexes
from gateway.flows.forks import ForkRefused, plan
from gateway.flows.models import StepView
from gateway.flows.outcomes import asking
from gateway.flows.reviews import approval_step
from gateway.flows.target_checks import as_item_call
from tests.support.flows import QUOTE_FLOW

DOCUMENT = FlowDocument.model_validate(
    QUOTE_FLOW
)  # check (quote, stock), big_discount, manager, reply
LONG = "a" * 60


def _ops(*names: str, document: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Operations as DBOS lists them; "begin" with its output (the run it read)."""
    begun = {"run": {"id": "run_1", "input": {}}, "document": document or QUOTE_FLOW}
    return [
        {"function_id": i + 1, "function_name": n, **({"output": begun} if n == "begin" else {})}
        for i, n in enumerate(names)
    ]


def _record(step_id: str, state: str = "completed", **more: Any) -> StepView:
    more.setdefault("kind", "call")
    return StepView(
        id=step_id,
        state=state,
        attempts=1,
        retries=0,
        trace_id="0" * 32,
        started_at=datetime.now(UTC),
        **more,
    )


ORIGIN = {"id": "run_1", "flow_id": "quote-flow", "flow_version": 1, "input": {}}
# What a run of the quote flow with a big discount records.
APPROVED = _ops(
    "begin",
    "call quote",
    "call stock",
    "open manager",
    "check manager",
    "DBOS.recv",
    "close manager",
    "call reply",
    "call reply, retry",
    "finish",
)
RECORDS = [
    _record("check", kind="parallel"),
    _record("quote", parent="check"),
    _record("stock", parent="check"),
    _record("big_discount"),
    _record("manager"),
    _record("reply"),
]


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("call quote", 0),  # a branch belongs to its parallel step
        ("call stock, retry", 0),
        ("open manager", 2),
        ("approval key reply 1", 3),
        ("open reply:approval1.ab12cd", 3),
        ("call reply, answer 2", 3),
        ("question clock reply", 3),
        # Who answers the agent (`gateway.flows.answerers`).
        ("expression answer reply 1", 3),
        ("question key reply 2", 3),
        ("open reply:question2.ab12cd", 3),
        ("reviewer answer reply 2", 3),
        ("reset check branches", 0),
        ("DBOS.recv", None),
        ("DBOS.sleep", None),
        ("begin", None),
        ("finish", None),
        ("call nobody", None),
        ("calling reply", None),
    ],
)
def test_each_operation_belongs_to_its_step(name: str, index: int | None) -> None:
    assert owner_of(name, step_indexes(DOCUMENT)) == index


def test_a_map_item_and_a_shortened_review_belong_to_their_step() -> None:
    document = FlowDocument.model_validate(
        {
            "format": "switchboard.flow/v1",
            "id": "m",
            "name": "m",
            "steps": [
                {"id": "first", "call": {"agent": "sales", "skill": "quote"}},
                {"id": "each", "map": {"over": "input.xs", "call": {"agent": "sales"}}},
                {"id": LONG, "call": {"agent": "sales", "skill": "reply"}},
            ],
        }
    )
    indexes = step_indexes(document)
    assert owner_of("call each[12]", indexes) == 1
    assert owner_of("reset each items", indexes) == 1
    held = approval_step(document.steps[2], 1, "held", "abc123")  # type: ignore[arg-type]
    assert owner_of(f"open {held.id}", indexes) == 2


def test_a_long_maps_held_item_belongs_to_its_map() -> None:
    mapped = "m" * 50
    document = FlowDocument.model_validate(
        {
            "format": "switchboard.flow/v1",
            "id": "m",
            "name": "m",
            "steps": [
                {"id": "first", "call": {"agent": "sales", "skill": "quote"}},
                {"id": mapped, "map": {"over": "input.xs", "call": {"agent": "sales"}}},
            ],
        }
    )
    item = as_item_call(document.steps[1], f"{mapped}[12]")  # type: ignore[arg-type]
    held = approval_step(item, 1, "held", "abc123")
    assert "~" in held.id  # shortened to fit the step column
    indexes = step_indexes(document)
    assert owner_of(f"open {held.id}", indexes) == 1
    assert owner_of(f"close {held.id}", indexes) == 1


def test_the_fork_starts_at_the_first_operation_of_its_step_or_a_later_one() -> None:
    assert start_position(APPROVED, step_indexes(DOCUMENT), "check") == 2
    assert start_position(APPROVED, step_indexes(DOCUMENT), "manager") == 4
    assert start_position(APPROVED, step_indexes(DOCUMENT), "reply") == 8
    # A step with no operation of its own (a route): the next one that has.
    assert start_position(APPROVED, step_indexes(DOCUMENT), "big_discount") == 4
    # A run that ended before anything after the step: its finish.
    failed = _ops("begin", "call quote", "call stock", "finish")
    assert start_position(failed, step_indexes(DOCUMENT), "reply") == 4
    assert start_position(_ops("begin"), step_indexes(DOCUMENT), "reply") is None
    # The order is DBOS's, not the listing's.
    assert start_position(list(reversed(APPROVED)), step_indexes(DOCUMENT), "reply") == 8


def test_the_steps_before_are_reused_with_their_branches() -> None:
    assert reused_records(RECORDS, step_indexes(DOCUMENT), "reply") == [
        "check",
        "quote",
        "stock",
        "big_discount",
        "manager",
    ]
    assert reused_records(RECORDS, step_indexes(DOCUMENT), "check") == []


def test_a_plan_says_where_and_what() -> None:
    fork = plan(ORIGIN, RECORDS, DOCUMENT, DOCUMENT, 1, "reply", APPROVED)
    assert (fork.origin, fork.step, fork.position) == ("run_1", "reply", 8)
    assert fork.reused == ("check", "quote", "stock", "big_discount", "manager")


@pytest.mark.parametrize(
    ("step", "records", "operations", "said"),
    [
        ("quote", RECORDS, APPROVED, "is not a step of flow quote-flow"),
        ("nope", RECORDS, APPROVED, "is not a step"),
        ("reply", RECORDS[:3], APPROVED, "never reached step reply"),
        ("reply", RECORDS, _ops("call quote"), "no longer keeps"),
        (
            "reply",
            RECORDS,
            _ops("begin", "call quote", "fetch quote"),
            "cannot place \\('fetch quote'",
        ),
        (
            "manager",
            [*RECORDS[:4], _record("manager", "skipped", error="route big_discount went to reply")],
            APPROVED,
            "route big_discount went to reply past step manager",
        ),
    ],
)
def test_what_cannot_be_forked(
    step: str, records: list[StepView], operations: list[dict[str, Any]], said: str
) -> None:
    with pytest.raises(ForkRefused, match=said):
        plan(ORIGIN, records, DOCUMENT, DOCUMENT, 1, step, operations)


def test_a_run_cancelled_in_its_step_is_forked_after_all_it_recorded() -> None:
    cancelled = _ops("begin", "call quote", "call stock", "open manager", "close manager")
    assert plan(ORIGIN, RECORDS, DOCUMENT, DOCUMENT, 1, "reply", cancelled).position == 6


def test_a_version_that_moves_a_reused_step_after_the_forks_is_refused() -> None:
    moved = dict(QUOTE_FLOW)
    steps = QUOTE_FLOW["steps"]
    moved["steps"] = [steps[0], steps[1], steps[3], steps[2]]  # manager after reply
    moved["steps"][1] = {"id": "big_discount", "route": [{"goto": "reply"}]}
    document = FlowDocument.model_validate(moved)
    with pytest.raises(ForkRefused, match="step manager comes after reply in version 2"):
        plan(ORIGIN, RECORDS, DOCUMENT, document, 2, "reply", APPROVED)


def test_what_redaction_removed_is_not_forked() -> None:
    redacting = FlowDocument.model_validate({**QUOTE_FLOW, "redact": ["Total"]})
    ops = _ops(
        *[str(o["function_name"]) for o in APPROVED], document={**QUOTE_FLOW, "redact": ["Total"]}
    )
    rewritten = {**ORIGIN, "redacted_at": "2026-11-26T00:00:00Z"}
    with pytest.raises(ForkRefused, match="was redacted at rest"):
        plan(rewritten, RECORDS, redacting, redacting, 1, "reply", ops)
    assert plan(ORIGIN, RECORDS, redacting, redacting, 1, "reply", ops).position == 8
    with pytest.raises(ForkRefused, match="does not redact 'total'"):
        plan(ORIGIN, RECORDS, redacting, DOCUMENT, 2, "reply", ops)
    # Not rewritten because nothing is redacted: forked as any.
    assert plan(rewritten, RECORDS, DOCUMENT, DOCUMENT, 1, "reply", APPROVED).position == 8


def test_a_newer_version_must_have_had_every_step_before_the_forks() -> None:
    newer = dict(QUOTE_FLOW)
    newer["steps"] = [
        {"id": "greet", "call": {"agent": "sales", "skill": "reply"}},
        *QUOTE_FLOW["steps"],
    ]
    document = FlowDocument.model_validate(newer)
    with pytest.raises(ForkRefused, match="step greet comes before reply in version 2"):
        plan(ORIGIN, RECORDS, DOCUMENT, document, 2, "reply", APPROVED)
    without = dict(QUOTE_FLOW)
    without["steps"] = QUOTE_FLOW["steps"][:-1]
    with pytest.raises(ForkRefused, match="version 2 of the flow has no step reply"):
        plan(ORIGIN, RECORDS, DOCUMENT, FlowDocument.model_validate(without), 2, "reply", APPROVED)


def test_a_repeats_rounds_and_a_reviews_records_belong_to_their_step() -> None:
    document = FlowDocument.model_validate(
        {
            "format": "switchboard.flow/v1",
            "id": "r",
            "name": "r",
            "steps": [
                {"id": "first", "call": {"agent": "sales"}, "on_error": "checkpoint"},
                {
                    "id": "loop",
                    "repeat": {
                        "steps": [
                            {"id": "draft", "call": {"agent": "sales"}},
                            {
                                "id": "both",
                                "parallel": {
                                    "branches": [
                                        {"id": "left", "call": {"agent": "sales"}},
                                        {"id": "right", "call": {"agent": "sales"}},
                                    ]
                                },
                            },
                        ],
                        "until": "steps.draft.output.ok",
                        "max": 3,
                    },
                },
                {"id": "last", "call": {"agent": "sales"}},
            ],
        }
    )
    indexes = step_indexes(document)
    assert owner_of("call draft#2", indexes) == 1
    assert owner_of("call right#3, retry", indexes) == 1
    assert owner_of("open first_review1", indexes) == 0
    operations = _ops("begin", "call first", "call draft#1", "call left#1", "call last", "finish")
    assert start_position(operations, step_indexes(document), "loop") == 3
    records = [
        _record("first"),
        _record("first_review1", kind="checkpoint"),
        _record("loop", kind="repeat"),
        _record("draft#1"),
        _record("both#1", kind="parallel"),
        _record("left#1", parent="both#1"),
        _record("last"),
    ]
    assert reused_records(records, step_indexes(document), "last") == [
        "first",
        "first_review1",
        "loop",
        "draft#1",
        "both#1",
        "left#1",
    ]
    assert reused_records(records, step_indexes(document), "loop") == ["first", "first_review1"]


def _begun(run_input: dict[str, Any], document: dict[str, Any]) -> list[dict[str, Any]]:
    operations = [dict(o) for o in APPROVED]
    operations[0]["output"] = {"run": {"id": "run_0", "input": run_input}, "document": document}
    return operations


def test_a_fork_of_a_fork_goes_on_only_where_it_replays_alike() -> None:
    fork = {**ORIGIN, "forked_from": "run_0", "fork_step": "manager", "input": {"x": 2}}
    # Its own input from manager on: forked at manager or before, it replays.
    assert plan(fork, RECORDS, DOCUMENT, DOCUMENT, 1, "manager", _begun({"x": 1}, QUOTE_FLOW))
    assert plan(fork, RECORDS, DOCUMENT, DOCUMENT, 1, "check", _begun({"x": 1}, QUOTE_FLOW))
    # After it, the steps it walked with its own input cannot be replayed.
    with pytest.raises(ForkRefused, match="fork it from manager or an earlier step"):
        plan(fork, RECORDS, DOCUMENT, DOCUMENT, 1, "reply", _begun({"x": 1}, QUOTE_FLOW))
    # Another version from there on: the same.
    other = {**QUOTE_FLOW, "description": "v2"}
    with pytest.raises(ForkRefused, match="or fork run run_0"):
        plan(
            {**fork, "input": {"x": 1}},
            RECORDS,
            DOCUMENT,
            DOCUMENT,
            1,
            "reply",
            _begun({"x": 1}, other),
        )
    # The first run's own input and version: a fork like any.
    same = plan(
        {**fork, "input": {"x": 1}},
        RECORDS,
        DOCUMENT,
        DOCUMENT,
        1,
        "reply",
        _begun({"x": 1}, QUOTE_FLOW),
    )
    assert same.position == 8


def test_a_branch_of_the_reused_steps_made_a_step_after_the_forks_is_refused() -> None:
    later = dict(QUOTE_FLOW)
    steps = list(QUOTE_FLOW["steps"])
    # "quote", a branch before the fork, becomes a top-level step after it.
    steps[0] = {
        "id": "check",
        "parallel": {
            "branches": [
                {"id": "price", "call": {"agent": "sales", "skill": "quote"}},
                steps[0]["parallel"]["branches"][1],
            ]
        },
    }
    steps.append({"id": "quote", "call": {"agent": "sales", "skill": "quote"}})
    later["steps"] = steps
    with pytest.raises(ForkRefused, match="step quote comes after reply"):
        plan(ORIGIN, RECORDS, DOCUMENT, FlowDocument.model_validate(later), 2, "reply", APPROVED)


def test_a_long_round_ids_question_and_approval_belong_to_their_repeat() -> None:
    """A block step's id of 48 characters: its round's id is shortened whole
    when a question to a reviewer or a held call's approval is named after it."""
    inner_id = "s" * 48
    document = FlowDocument.model_validate(
        {
            "format": "switchboard.flow/v1",
            "id": "r",
            "name": "r",
            "steps": [
                {"id": "first", "call": {"agent": "sales", "skill": "quote"}},
                {
                    "id": "loop",
                    "repeat": {
                        "steps": [{"id": inner_id, "call": {"agent": "sales", "skill": "ship"}}],
                        "until": "`true`",
                        "max": 3,
                    },
                },
            ],
        }
    )
    indexes = step_indexes(document)
    inner = document.steps[1].repeat.steps[0]  # type: ignore[union-attr]
    assert isinstance(inner, CallStep)
    round_step = inner.model_copy(update={"id": f"{inner_id}#3"})
    asked = question_step(round_step, 1, asking("?", None, "sales", "input_required", "s"), "k1")
    held = approval_step(round_step, 1, "held", "k2")
    assert len(asked.id) <= 64 and len(held.id) <= 64
    assert owner_of(f"open {asked.id}", indexes) == 1
    assert owner_of(f"close {held.id}", indexes) == 1
