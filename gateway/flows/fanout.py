"""The steps that fan out: `map` (one call or sequence per item, bounded
concurrency: `gateway.flows.fanout_map`) and `parallel` (branches joined by
all / any / a quorum: `gateway.flows.fanout_parallel`), as a part of
`gateway.flows.runner.FlowRun`; here, what both share. Each call they make
is a DBOS step of its own, with its step id drawn in order before any
starts, so a run resumed after a crash finds every finished call's record
under the same id.

An item or a branch whose call waits for someone -- its agent asks a
question, the policy holds it for an approval, its user must connect an
account first -- ends its DBOS step waiting; once the fan-out has settled,
the workflow itself goes on with each such call in turn, in the items' or
branches' order (`reviews.go_on`): asks whoever the flow names, waits for
the decision or the connection, and makes the call go on. A parallel step
whose join is decided meanwhile does not need its waiting branches: their
agents' tasks are cancelled. ``on_error: checkpoint`` on a map, a parallel
step or a branch asks a human as a call step does (`gateway.flows.reviews`),
likewise only once the fan-out has settled. So what DBOS records follows
from the recorded outcomes alone, never from the order concurrent calls
finished in, and a run resumed while one waits finds the same question.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dbos import DBOS

from gateway.flows import reviews
from gateway.flows.calls import StepCall
from gateway.flows.definition import (
    CallStep,
)
from gateway.flows.outcomes import AUTH_REQUIRED, RETRYING, now
from gateway.flows.questions import Answer
from gateway.flows.runtime import FlowRuntime
from gateway.flows.step_admission import CallContext

# What a human's "no" makes of it (a rejected approval): the run's end, as for a call step.
ENDS_RUN = frozenset({"rejected", "canceled"})


def stops(outcome: dict[str, Any]) -> bool:
    """After this outcome of a waiting call, nobody is asked for the rest of
    the fan-out: a human said no, or the run cannot go on (no answer in
    time, a spent budget, a grant no longer usable: fatal)."""
    return outcome["state"] in ENDS_RUN or bool(outcome.get("fatal"))


class FanOutSteps:
    rt: FlowRuntime
    run_id: str
    info: dict[str, Any]
    ctx: dict[str, Any]

    async def call_attempt(
        self,
        step: CallStep,
        parent: str | None,
        scope: dict[str, Any] | None = None,
        reply: Answer | None = None,
        approved: bool = False,
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def mark(self, step_id: str, kind: str, state: str, **values: Any) -> None:
        raise NotImplementedError

    async def give_up(self, step: CallStep, ended: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _retrying(
        self, step: CallStep, parent: str, scope: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A call inside a fan-out's own DBOS step (an item, a branch). Its
        attempts count on across a crash as any call's do (its record says
        which is next: none is made twice), but the backoff between two is
        waited here, in the step: a DBOS sleep taken from the concurrent part
        of a fan-out would get its id in the order the calls happen to fail.
        A run resumed during such a backoff makes the next attempt at once.
        A call that waits for someone ends the step so (`WAITING`): nothing
        waits durably inside a DBOS step."""
        outcome = await self.call_attempt(step, parent, scope)
        while outcome["state"] == RETRYING:
            await asyncio.sleep(float(outcome["backoff"]))
            outcome = await self.call_attempt(step, parent, scope)
        return outcome

    async def enter(self, step_id: str, kind: str) -> None:
        """The step marked running, and the run's current step -- the first
        time only. This is the workflow's own code, run again when a replay
        after a crash passes through: it must not take the run's current
        step back from the question or approval one of the step's calls
        waits at (whose opening, recorded, is not run again), or an answer
        would find the run asking nothing."""
        if await self.rt.store.step_row(self.run_id, step_id) is None:
            # Before the mark: a crash between the two makes this "the first
            # time" again on the replay.
            await self.rt.store.set_run(self.run_id, current_step=step_id)
        await self.mark(step_id, kind, "running", started_at=now())

    async def go_on_waiting_call(
        self,
        call: CallStep,
        parent: str,
        outcome: dict[str, Any],
        scope: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A waiting item's or branch's call gone on with, its turn come. One
        that waited for its user to connect is made again first (nothing was
        sent): the user may have connected while an earlier one waited --
        the one connection wakes one wait only."""
        if outcome["state"] == AUTH_REQUIRED:
            await DBOS.run_step_async({"name": f"reset {call.id}"}, reviews.reset, self, [call])
            return await reviews.called(self, call, f"call {call.id}, again", parent, scope)
        return await reviews.go_on(self, call, f"call {call.id}", outcome, parent, scope)

    async def dismissed(
        self, call: CallStep, parent: str, stopped: dict[str, Any] | None
    ) -> dict[str, Any]:
        """A waiting call whose turn never comes -- the join was decided
        without it, or the step ended (``stopped``) -- given up in a recorded
        operation: its agent's task (one that asked) cancelled, best effort,
        its record saying why (`not_needed`), nobody asked."""
        return await DBOS.run_step_async(
            {"name": f"give up {call.id}, not needed"},
            self._no_longer_needed,
            call,
            parent,
            None if stopped is None else f"not asked: {stopped.get('error')}"[:500],
        )

    async def _no_longer_needed(
        self, branch: CallStep, parent: str, why: str | None = None
    ) -> dict[str, Any]:
        await self._cancel_upstream(branch)
        return await self._not_needed(branch, parent, why)

    async def _cancel_upstream(self, branch: CallStep) -> None:
        with contextlib.suppress(Exception):
            caller = await self.rt.caller(self.info["grant_id"])
            await StepCall(
                self.rt, CallContext(self.run_id, self.info["trace_id"], caller), branch
            ).cancel_upstream()

    async def reset_again(self, calls: list[CallStep], others: list[str], parent: str) -> None:
        """The calls to make again (a review approved it) as before a first
        attempt, and the other records that go with them (a sequence's own,
        its routes' and skipped steps': `lanes.to_reset`) pending; their
        step (``parent``) running again. A recorded operation."""
        await reviews.reset(self, calls, parent)
        for step_id in others:
            if await self.rt.store.step_row(self.run_id, step_id) is not None:
                await self.rt.store.set_step(
                    self.run_id, step_id, state="pending", output=None, error=None, finished_at=None
                )

    async def call_unless_decided(
        self,
        branch: CallStep,
        parent: str,
        decided: asyncio.Event | None,
        scope: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A branch's call (a DBOS step), given up for "not needed" if the
        parallel step's join is decided before it ends."""
        if decided is None:
            return await self._retrying(branch, parent, scope)
        if decided.is_set():
            return await self._not_needed(branch, parent)
        call = asyncio.ensure_future(self._retrying(branch, parent, scope))
        waiter = asyncio.ensure_future(decided.wait())
        try:
            await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if call.done():
            return call.result()
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await self._cancel_upstream(branch)
        return await self._not_needed(branch, parent)

    async def _not_needed(
        self, branch: CallStep, parent: str, why: str | None = None
    ) -> dict[str, Any]:
        said = why or "the join was decided"
        await self.mark(branch.id, "call", "not_needed", parent=parent, error=said)
        if why is not None:  # said in the map's or parallel's failure too
            return {"state": "not_needed", "output": None, "text": "", "error": why}
        return {"state": "not_needed", "output": None, "text": "", "error": None}
