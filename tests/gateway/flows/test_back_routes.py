"""Routes that go back (`gateway.flows.back_routes`): which steps are a
route's loop, what registration says of one, how the walk names each round,
and where a fork of a run with a loop may start -- without an engine."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.flows import back_routes
from gateway.flows.definition import CallStep, ParallelStep, RouteStep
from gateway.flows.documents import DocumentInvalid, validate
from gateway.flows.fork_positions import owner_of, reused_records, step_indexes
from gateway.flows.forks import ForkRefused, plan
from gateway.flows.models import StepView
from gateway.flows.step_records import shortened
from tests.gateway.flows.test_checks import flow, problems, said


def call(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "call": {"agent": "support"}, "message": "'hi'", **extra}


def back(step_id: str, goto: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "route": [{"when": "`true`", "goto": goto}], **extra}


LOOPED = flow(
    call("before"),
    call("draft"),
    call("review", message="steps.draft.text"),
    back("again", "draft", max=3),
    call("send", message="steps.review.text"),
)


def test_the_loop_runs_from_the_earliest_step_a_case_goes_back_to() -> None:
    document = flow(
        call("a"),
        call("b"),
        {
            "id": "r",
            "route": [{"when": "`false`", "goto": "b"}, {"when": "`true`", "goto": "a"}],
            "max": 2,
        },
        call("c"),
    )
    (loop,) = back_routes.loops(document)
    assert (loop.route.id, loop.first, loop.last) == ("r", 0, 2)
    assert list(back_routes.loops(flow(call("a"), back("r", "end")))) == []
    assert back_routes.inside(document, "a") is None  # the loop's first step
    assert back_routes.inside(document, "b") == loop
    assert back_routes.inside(document, "r") == loop
    assert back_routes.inside(document, "c") is None


def test_a_sound_loop_has_no_problems() -> None:
    assert problems(LOOPED) == []
    # A forward route inside the loop (out of it, here) is fine.
    document = flow(
        call("draft"),
        {"id": "done", "route": [{"when": "`true`", "goto": "send"}]},
        back("again", "draft", max=2),
        call("send"),
    )
    assert problems(document) == []


@pytest.mark.parametrize(
    ("steps", "where", "message"),
    [
        ([call("a"), back("r", "a")], ("r", "steps[1].max"), "needs max"),
        ([call("a"), back("r", "end", max=2)], ("r", "steps[1].max"), "max is for a route"),
        ([call("a"), back("r", "r", max=2)], ("r", "steps[1].route[0].goto"), "not go to itself"),
        (
            [call("a"), {"id": "w", "wait": {"event": "go"}}, back("r", "a", max=2)],
            ("w", "steps[1]"),
            "a wait cannot be in the loop of route 'r'",
        ),
        (
            [
                call("a"),
                {"id": "p", "repeat": {"steps": [call("x")], "until": "`true`", "max": 2}},
                back("r", "a", max=2),
            ],
            ("p", "steps[1]"),
            "a repeat cannot be in the loop",
        ),
        (
            [call("a"), call("b"), back("inner", "b", max=2), back("outer", "a", max=2)],
            ("inner", "steps[2]"),
            "loops do not nest",
        ),
        (
            [call("a"), call("b"), back("one", "a", max=2), back("two", "b", max=2)],
            ("one", "steps[2]"),
            "loops do not nest",
        ),
        (
            [call("s" * 49), back("r", "s" * 49, max=2)],
            ("s" * 49, "steps[0].id"),
            "at most 48 characters",
        ),
        (
            [
                {
                    "id": "p",
                    "parallel": {"branches": [call("b" * 49), call("c")]},
                },
                back("r", "p", max=2),
            ],
            ("p", "steps[0].parallel.branches[0].id"),
            "at most 48 characters",
        ),
        (
            [call("a", message="steps.c.text"), call("b"), back("r", "a", max=2), call("c")],
            ("a", "steps[0].message"),
            "has not run yet",
        ),
    ],
)
def test_what_registration_refuses(
    steps: list[dict[str, Any]], where: tuple[str, str], message: str
) -> None:
    found = problems(flow(*steps))
    assert where in said(found), found
    assert any(message in p["message"] for p in found if (p["step"], p["field"]) == where)


def test_a_step_reads_a_later_step_of_its_loop_as_the_round_before() -> None:
    # A redraft reads the review that sent it back (null in round 1), and the
    # route's own output (its round).
    document = flow(
        call("draft", message="join(' ', [steps.review.text || '', 'draft'])"),
        call("review", message="steps.draft.text", when="steps.again.output.round != `2`"),
        back("again", "draft", max=3),
    )
    assert problems(document) == []
    # Not from outside the loop, nor a step after it.
    outside = flow(
        call("first", message="steps.review.text"),
        call("draft"),
        call("review"),
        back("again", "draft", max=3),
    )
    assert said(problems(outside)) == [("first", "steps[0].message")]


def test_on_max_and_max_are_for_a_route_that_goes_back() -> None:
    forward = flow(call("a"), back("r", "end", on_max="continue"), call("b"))
    assert said(problems(forward)) == [("r", "steps[1].on_max")]


@pytest.mark.parametrize("bad", [0, 51, "three", 2.5, -1])
def test_the_schema_bounds_max(bad: Any) -> None:
    with pytest.raises(ValueError, match="max"):
        flow(call("a"), back("r", "a", max=bad))


def test_each_round_after_the_first_is_named_after_it() -> None:
    rounds = back_routes.Rounds()
    step = CallStep.model_validate(call("draft"))
    parallel = ParallelStep.model_validate(
        {"id": "p", "parallel": {"branches": [call("x"), call("y")]}}
    )
    assert rounds.reach(step) is step  # round 1: as in a flow without loops
    assert rounds.reach(step).id == "draft#2"
    assert rounds.reach(step).id == "draft#3"
    assert rounds.round_of("draft") == 3 and rounds.round_of("p") == 0
    rounds.reach(parallel)
    again = rounds.reach(parallel)
    assert again.id == "p#2"
    assert [b.id for b in again.parallel.branches] == ["x#2", "y#2"]
    assert parallel.id == "p" and parallel.parallel.branches[0].id == "x"  # not changed


def test_a_route_goes_back_until_its_round_reaches_max() -> None:
    rounds = back_routes.Rounds()
    route = RouteStep.model_validate(back("again", "draft", max=3))
    went = []
    for _ in range(5):
        rounds.reach(route)
        went.append(rounds.may_go_back(route))
    assert went == [True, True, False, False, False]


def test_a_fork_places_each_rounds_operations_at_its_step() -> None:
    indexes = step_indexes(LOOPED)
    assert owner_of("call draft#3", indexes) == 1
    assert owner_of("open review#2_review1", indexes) == 2
    long_id = "d" * 48
    document = flow(call(long_id), back("r", long_id, max=4))
    assert owner_of(f"ask {shortened(f'{long_id}#4')}", step_indexes(document)) == 0


ORIGIN = {
    "id": "run_1",
    "flow_id": "order-flow",
    "flow_version": 1,
    "input": {"sku": "A", "qty": 1},
}


def _record(step_id: str) -> StepView:
    return StepView.model_validate(
        {
            "id": step_id,
            "kind": "call",
            "state": "completed",
            "attempts": 1,
            "retries": 0,
            "trace_id": "t",
        }
    )


RECORDS = [
    _record(name)
    for name in ("before", "draft", "review", "again", "draft#2", "review#2", "again#2", "send")
]


def _operations() -> list[dict[str, Any]]:
    begun = {"run": {"id": "run_1", "input": {}}, "document": LOOPED.model_dump(mode="json")}
    names = ["begin", "call before", "call draft", "call review", "call draft#2"]
    names += ["call review#2", "call send", "finish"]
    return [
        {"function_id": i + 1, "function_name": n, **({"output": begun} if n == "begin" else {})}
        for i, n in enumerate(names)
    ]


def test_a_fork_starts_at_the_loops_first_step_or_after_the_route() -> None:
    at_first = plan(ORIGIN, RECORDS, LOOPED, LOOPED, 1, "draft", _operations())
    assert (at_first.position, at_first.reused) == (3, ("before",))
    after = plan(ORIGIN, RECORDS, LOOPED, LOOPED, 1, "send", _operations())
    assert after.position == 7
    assert after.reused == tuple(r.id for r in RECORDS[:-1])
    assert reused_records(RECORDS, step_indexes(LOOPED), "draft") == ["before"]
    for inside in ("review", "again"):
        with pytest.raises(ForkRefused, match="inside the loop of route again"):
            plan(ORIGIN, RECORDS, LOOPED, LOOPED, 1, inside, _operations())


def test_a_bad_max_is_named_at_its_field() -> None:
    document = {
        "format": "switchboard.flow/v1",
        "id": "x",
        "name": "x",
        "steps": [
            {"id": "p", "repeat": {"steps": [call("a")], "until": "`true`", "max": 0}},
            {"id": "r", "route": [{"goto": "p"}], "max": 51},
        ],
    }
    with pytest.raises(DocumentInvalid) as refused:
        validate(document)
    assert [(e["step"], e["field"]) for e in refused.value.errors] == [
        ("p", "steps[0].repeat.max"),
        ("r", "steps[1].max"),
    ]
