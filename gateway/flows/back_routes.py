"""Routes that go back: a loop over the steps from an earlier step through
the route, at most ``max`` rounds.

A route case may name an earlier top-level step (``goto``). The steps from
the earliest step its cases go back to, through the route itself, are the
route's *loop*. The walk (`gateway.flows.runner`) counts how many times it
has reached each step: the first time a step is recorded (and called) under
its own id, as in a flow without loops; each later round as
``<id>#<round>``, as a repeat's block step is (`gateway.flows.loops`) -- so
a round's call is a new call with its own message id and task, never the
round before's found again, and a checkpoint asks again. Expressions read
the latest round's outputs as ``steps.<id>``; a step may read a later step of its own
loop -- the round before's output, null in round 1 (a draft reading the
review that sent it back).

Bounded: the route goes back only while its own round is below ``max``;
then ``on_max`` fails the run or goes on past the route. Like everything the
walk decides on, the rounds follow from recorded outputs, so a replay after
a crash takes the same rounds.

What a loop may hold (`check`): calls, parallel steps, maps, checkpoints and
routes that go forward -- not a wait (an event names one step), a repeat, or
another route that goes back (loops do not nest or overlap); ids short
enough for ``#<round>`` (as a repeat's block, `REPEATED_STEP_ID`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar, cast

from gateway.flows.definition import (
    END,
    REPEATED_STEP_ID,
    FlowDocument,
    ParallelStep,
    RepeatStep,
    RouteStep,
    WaitStep,
)


class _Named(Protocol):
    """A step: an id, and copied with changes (pydantic's `model_copy`)."""

    @property
    def id(self) -> str: ...

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self: ...


S = TypeVar("S", bound=_Named)


@dataclass(frozen=True)
class Loop:
    route: RouteStep
    first: int  # the index of the earliest step a case goes back to
    last: int  # the route's index

    def holds(self, index: int) -> bool:
        return self.first <= index <= self.last


def loops(document: FlowDocument) -> Iterator[Loop]:
    """Each route that goes back, with the steps of its loop."""
    order = {step.id: i for i, step in enumerate(document.steps)}
    for index, step in enumerate(document.steps):
        if isinstance(step, RouteStep):
            # "end" is the run's end, even beside a step of that name (as the walk has it).
            back = [
                order[c.goto]
                for c in step.route
                if c.goto != END and order.get(c.goto, index) < index
            ]
            if back:
                yield Loop(step, min(back), index)


def inside(document: FlowDocument, step_id: str) -> Loop | None:
    """The loop ``step_id`` is in after its first step, if any: a fork cannot
    start there (`gateway.flows.forks`): the records before it include the
    later rounds of the steps before it in the loop, which it would run again."""
    order = [step.id for step in document.steps]
    if step_id not in order:
        return None
    index = order.index(step_id)
    return next((loop for loop in loops(document) if loop.first < index <= loop.last), None)


def check(document: FlowDocument) -> list[dict[str, Any]]:
    """What a route that goes back must be, and what its loop may hold."""
    problems: list[dict[str, Any]] = []
    found = {loop.route.id: loop for loop in loops(document)}
    for index, step in enumerate(document.steps):
        if not isinstance(step, RouteStep):
            continue
        where = f"steps[{index}]"
        for i, case in enumerate(step.route):
            if case.goto == step.id:
                said = "a route does not go to itself: go back to an earlier step"
                problems.append(_problem(step.id, f"{where}.route[{i}].goto", said))
        loop = found.get(step.id)
        if loop is None:
            for key in ("max", "on_max"):
                if key in step.model_fields_set:
                    said = f"{key} is for a route that goes back to an earlier step"
                    problems.append(_problem(step.id, f"{where}.{key}", said))
            continue
        if step.max is None:
            said = "a route that goes back needs max: at most this many rounds"
            problems.append(_problem(step.id, f"{where}.max", said))
        problems += _loop_holds(document, loop)
    return problems


def _loop_holds(document: FlowDocument, loop: Loop) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    route = loop.route.id
    first = document.steps[loop.first].id
    looping = {other.route.id for other in loops(document)}
    for index in range(loop.first, loop.last + 1):
        step = document.steps[index]
        where = f"steps[{index}]"
        if isinstance(step, WaitStep | RepeatStep):
            kind = "wait" if isinstance(step, WaitStep) else "repeat"
            said = f"a {kind} cannot be in the loop of route {route!r} (from {first!r})"
            problems.append(_problem(step.id, where, said))
        elif step.id in looping and index != loop.last:
            said = f"loops do not nest: this route goes back inside route {route!r}'s loop"
            problems.append(_problem(step.id, where, said))
        ids = [(step.id, f"{where}.id")]
        if isinstance(step, ParallelStep):
            ids += [(found, f"{where}.{at}") for found, at in step.branch_ids()]
        for found, field in ids:
            if len(found) > REPEATED_STEP_ID:
                said = (
                    f"a step in route {route!r}'s loop has an id of at most {REPEATED_STEP_ID} "
                    "characters: each round is recorded as <id>#<round>"
                )
                problems.append(_problem(step.id, field, said))
    return problems


def _problem(step: str, field: str, message: str) -> dict[str, Any]:
    return {"step": step, "field": field, "message": message}


def in_round(step: S, round_: int) -> S:
    """``step`` as run in ``round_``: its id (and its branches') ``#<round>``."""
    if isinstance(step, ParallelStep):
        branches = [b.model_copy(update={"id": f"{b.id}#{round_}"}) for b in step.parallel.branches]
        parallel = step.parallel.model_copy(update={"branches": branches})
        return cast(S, step.model_copy(update={"id": f"{step.id}#{round_}", "parallel": parallel}))
    return step.model_copy(update={"id": f"{step.id}#{round_}"})


class Rounds:
    """How many times the walk has reached each top-level step."""

    def __init__(self) -> None:
        self._reached: dict[str, int] = {}

    def reach(self, step: S) -> S:
        """``step`` reached once more: as it is recorded this time."""
        round_ = self._reached[step.id] = self._reached.get(step.id, 0) + 1
        return step if round_ == 1 else in_round(step, round_)

    def round_of(self, step_id: str) -> int:
        return self._reached.get(step_id, 0)

    def may_go_back(self, route: RouteStep) -> bool:
        """Whether ``route`` (just reached) may start another round."""
        return self.round_of(route.id) < (route.max or 1)
