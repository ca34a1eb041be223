"""A parallel branch's or a map item's own steps, one after the other, while
the other branches or items run (`definition.Lane`, ``map.steps``).

Each call is a DBOS step of its own, at an id drawn before the fan-out
starts -- one per step of the sequence, the branches (items) in order -- so
whatever order concurrent calls finish in, a replay finds every call's
record at the same id. A ``when`` and a route (on to a later step of the
sequence, or ``end``) are decided in the workflow's code from recorded
outcomes only; a step skipped leaves its id unused, on a replay too.

A call that waits for someone -- its agent asks, the policy holds it, its
user must connect an account (`outcomes.WAITING`) -- pauses its sequence:
nothing waits inside the concurrent part. Once the fan-out has settled, the
workflow goes on with each paused sequence in turn (`reviews.go_on`) and
runs the rest of it then, at the ids drawn at the start.

Records: the sequence's own (``kind: steps``) under its branch's id or the
item's ``<map>[<index>]``, its parent the parallel or map step; its steps'
under their own ids (a branch's) or ``<map>[<index>].<id>`` (an item's),
their parent the sequence's record. Expressions in a sequence read its own
earlier steps as ``steps.<id>`` (and a map's ``item`` and ``index``); a
branch's steps are readable after the parallel step, an item's only through
the map's output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dbos import DBOS

from gateway.flows.definition import END, CallStep, RouteStep
from gateway.flows.expressions import evaluate
from gateway.flows.outcomes import WAITING, failed, now, seen, truthy
from gateway.flows.preemption import cancellable
from gateway.flows.runtime import FlowRuntime

if TYPE_CHECKING:
    from dbos import StepReservation

LaneStepModel = CallStep | RouteStep
KIND = "steps"


class FanOutSteps(Protocol):
    """What a sequence needs of the fan-out it runs in (`gateway.flows.fanout`)."""

    rt: FlowRuntime
    run_id: str
    ctx: dict[str, Any]

    async def mark(self, step_id: str, kind: str, state: str, **values: Any) -> None: ...

    async def call_unless_decided(
        self,
        branch: CallStep,
        parent: str,
        decided: asyncio.Event | None,
        scope: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    async def go_on_waiting_call(
        self,
        call: CallStep,
        parent: str,
        outcome: dict[str, Any],
        scope: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    async def dismissed(
        self, call: CallStep, parent: str, stopped: dict[str, Any] | None
    ) -> dict[str, Any]: ...


@dataclass
class LaneRun:
    """One run of a sequence: a branch's, or one item's of a map."""

    steps: Sequence[LaneStepModel]
    record: str  # the sequence's record id
    parent: str  # the parallel or map step's record id
    name: Callable[[str], str]  # a step's id -> its record's id
    output: str | None  # the sequence's ``output`` expression
    scope: dict[str, Any] = field(default_factory=dict)  # a map's item and index
    reserved: list[StepReservation] = field(default_factory=list)
    at: int = 0  # the next step
    waiting: dict[str, Any] | None = None  # the outcome of the call at ``at`` that waits
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # step id -> what it did
    ended_at: int | None = None  # the step that ended the sequence short (failed, ...)

    def reserve(self) -> None:
        """One DBOS step id per step, drawn now (in the workflow's order)."""
        self.reserved = [DBOS.reserve_step() for _ in self.steps]

    def context(self, ctx: dict[str, Any]) -> dict[str, Any]:
        """What the sequence's expressions read: the run's, the item, and
        the sequence's own steps so far."""
        return {**ctx, **self.scope, "steps": {**ctx["steps"], **self.seen}}

    def again(self) -> list[LaneStepModel]:
        """Run again (a review approved it) from the step that ended it short
        -- the steps before it completed, and are not sent again -- or from
        the start if it never ran; the steps to reset, as recorded. In the
        workflow's code: a replay makes the same decision."""
        start = self.ended_at or 0
        self.at, self.waiting, self.ended_at = start, None, None
        for step in self.steps[start:]:
            self.seen.pop(step.id, None)
        return [step.model_copy(update={"id": self.name(step.id)}) for step in self.steps[start:]]

    def call_at(self) -> CallStep:
        """The call the sequence is paused at, as recorded."""
        step = self.steps[self.at]
        assert isinstance(step, CallStep)
        return step.model_copy(update={"id": self.name(step.id)})

    async def walk(
        self, run: FanOutSteps, decided: asyncio.Event | None, settled: bool
    ) -> dict[str, Any] | None:
        """The sequence from where it is; its outcome, or None when a call
        waits for someone and the fan-out has not settled (``settled``: the
        workflow goes on with it now, in turn)."""
        if self.waiting is None:  # first, or again from where it ended short
            await run.mark(self.record, KIND, "running", parent=self.parent, started_at=now())
        while self.at < len(self.steps):
            step = self.steps[self.at]
            record = self.name(step.id)
            context = self.context(run.ctx)
            try:
                # A call already made (it waits for someone) is not decided on again.
                holds = (
                    self.waiting is not None
                    or step.when is None
                    or truthy(evaluate(step.when, context))
                )
            except Exception as exc:
                return await self._end(run, failed(f"when: {exc}"), step.id)
            if not holds:
                await self._skip(run, step, "its when did not hold")
                self.at += 1
                continue
            if isinstance(step, RouteStep):
                try:
                    goto = _goto(step, context)
                except Exception as exc:
                    return await self._end(run, failed(str(exc)), step.id)
                shown = {"goto": goto or None}
                await run.mark(record, "route", "completed", parent=self.record, output=shown)
                self.seen[step.id] = seen({"state": "completed", "output": shown})
                ids = [s.id for s in self.steps]
                target = len(ids) if goto == END else ids.index(goto) if goto else self.at + 1
                for passed in self.steps[self.at + 1 : target]:
                    await self._skip(run, passed, f"route {step.id} went to {goto}")
                self.at = target
                continue
            outcome = await self._call(run, step, record, decided, settled)
            if outcome is None:
                return None  # paused: gone on with once the fan-out settles
            self.seen[step.id] = seen(outcome)
            if outcome["state"] != "completed" and not (
                step.on_error == "skip" and _passable(outcome)
            ):
                return await self._end(run, outcome, step.id)
            self.at += 1
        return await self._end(run, None)

    async def _call(
        self,
        run: FanOutSteps,
        step: CallStep,
        record: str,
        decided: asyncio.Event | None,
        settled: bool,
    ) -> dict[str, Any] | None:
        call = step.model_copy(update={"id": record})
        scope = self.context(run.ctx)
        if self.waiting is not None:  # its turn come, the fan-out settled
            outcome = await run.go_on_waiting_call(call, self.record, self.waiting, scope)
            self.waiting = None
        else:
            outcome = await self.reserved[self.at].run_async(
                {"name": f"call {record}"},
                cancellable(run.call_unless_decided),
                call,
                self.record,
                decided,
                scope,
            )
        while outcome["state"] in WAITING:
            if not settled:
                self.waiting = outcome
                return None
            outcome = await run.go_on_waiting_call(call, self.record, outcome, scope)
        return outcome

    async def dismiss(self, run: FanOutSteps, stopped: dict[str, Any] | None) -> dict[str, Any]:
        """A paused sequence whose turn never comes: its waiting call given
        up (`FanOutSteps.dismissed`), the sequence not needed."""
        assert self.waiting is not None
        outcome = await run.dismissed(self.call_at(), self.record, stopped)
        self.waiting = None
        return await self._end(run, outcome, self.steps[self.at].id)

    async def _skip(self, run: FanOutSteps, step: LaneStepModel, why: str) -> None:
        await run.mark(self.name(step.id), "skipped", "skipped", parent=self.record, error=why)
        self.seen[step.id] = seen({"state": "skipped", "output": None})

    async def _end(
        self, run: FanOutSteps, ended: dict[str, Any] | None, step_id: str | None = None
    ) -> dict[str, Any]:
        """The sequence's outcome, recorded: ``ended`` (a step's that ends
        it, ``step_id`` naming it), or completed with its output."""
        if ended is None:
            try:
                output = (
                    evaluate(self.output, self.context(run.ctx))
                    if self.output is not None
                    else self._last_output()
                )
            except Exception as exc:
                ended = failed(f"output: {exc}")
            else:
                ended = {"state": "completed", "output": output, "text": "", "error": None}
        else:
            self.ended_at = self.at
            if step_id is not None and ended.get("error"):
                ended = {**ended, "error": f"{step_id}: {ended['error']}"[:2000]}
        await run.mark(
            self.record,
            KIND,
            str(ended["state"]),
            parent=self.parent,
            output=ended.get("output"),
            error=ended.get("error"),
        )
        return ended

    def _last_output(self) -> Any:
        """The output of the sequence's last completed step (None: none)."""
        for step in reversed(self.steps):
            done = self.seen.get(step.id)
            if done is not None and done["state"] == "completed" and isinstance(step, CallStep):
                return done["output"]
        return None


def _goto(step: RouteStep, context: dict[str, Any]) -> str:
    for case in step.route:
        if case.when is None or truthy(evaluate(case.when, context)):
            return case.goto
    return ""  # no case held: on to the next step


def _passable(outcome: dict[str, Any]) -> bool:
    """A failure a step's ``on_error: skip`` passes over (not a human's no,
    not a grant no longer usable)."""
    return outcome["state"] == "failed" and not outcome.get("fatal")


def to_reset(lane: LaneRun, steps: Sequence[LaneStepModel]) -> tuple[list[CallStep], list[str]]:
    """What is reset of a sequence run again from ``steps`` (`LaneRun.again`):
    those steps' calls, and its own record and its other steps'
    (`FanOutSteps.reset_again`)."""
    calls = [step for step in steps if isinstance(step, CallStep)]
    return calls, [lane.record, *(step.id for step in steps if not isinstance(step, CallStep))]
