"""The steps that fan out: `map` (one call per item, bounded concurrency) and
`parallel` (branches joined by all / any / a quorum), as a part of
`gateway.flows.runner.FlowRun`. Each call they make is a DBOS step of its
own, with its step id drawn in order before any starts, so a run resumed
after a crash finds every finished call's record under the same id.

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
from gateway.flows.calls import CallContext, StepCall
from gateway.flows.checks import as_item_call
from gateway.flows.definition import MAX_MAP_ITEMS, CallStep, MapStep, ParallelStep, Quorum
from gateway.flows.expressions import evaluate
from gateway.flows.outcomes import ASKING, AUTH_REQUIRED, HELD, RETRYING, failed, now, seen, truthy
from gateway.flows.questions import Answer
from gateway.flows.runtime import FlowRuntime

# An item's or a branch's call that waits for someone: gone on with by the
# workflow once the fan-out has settled (`reviews.go_on`).
WAITING = frozenset({AUTH_REQUIRED, HELD, ASKING})
# What a human's "no" makes of it (a rejected approval): the run's end, as for a call step.
ENDS_RUN = frozenset({"rejected", "canceled"})


def _stops(outcome: dict[str, Any]) -> bool:
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

    # Map -----------------------------------------------------------------------------

    async def _map(self, step: MapStep) -> dict[str, Any]:
        """One call per item of ``map.over``, at most ``concurrency`` at once,
        each a DBOS step of its own recorded as ``<step>[<index>]``: a run
        resumed after a crash finds the items already done and calls only the
        others (an item in flight re-attaches, as any call does).

        ``on_error: checkpoint`` asks once for the step, not once per failed
        item: the workflow opens the review when every item has settled, so
        the ids DBOS gives its operations never depend on which item failed
        first (a run resumed while it waits finds the same approval), and one
        decision covers every failure rather than up to a thousand approvals.
        Approved, only the items that did not complete are called again.
        (An item the policy holds is another matter: each such call is its
        own approval, asked in turn once the items have settled.)"""
        await self.enter(step.id, "map")
        items: list[dict[str, Any]] = []  # each item's outcome in the last round
        outcome = await self._map_round(step, items)
        if step.on_error != "checkpoint":
            return outcome

        async def again() -> dict[str, Any]:
            return await self._map_round(step, items, again=True)

        saying = "call the items that failed again"
        return await reviews.reviewed(self, step.id, step.map.call.target, outcome, again, saying)

    async def _map_round(
        self, step: MapStep, items: list[dict[str, Any]], again: bool = False
    ) -> dict[str, Any]:
        """The items not completed yet (all, the first time), ``items`` updated."""
        refused: str | None = None
        try:
            values = evaluate(step.map.over, self.ctx)
        except Exception as exc:
            refused = f"map.over: {exc}"
        else:
            if not isinstance(values, list):
                refused = f"map.over must be a list; it is {type(values).__name__}"
            elif len(values) > MAX_MAP_ITEMS:
                refused = f"map.over has {len(values)} items; at most {MAX_MAP_ITEMS}"
        if refused is not None:
            await self.mark(step.id, "map", "failed", error=refused)
            return failed(refused)
        if len(items) != len(values):
            items[:] = [{} for _ in values]
        todo = [i for i, o in enumerate(items) if o.get("state") != "completed"]
        calls = {i: as_item_call(step, f"{step.id}[{i}]") for i in todo}
        if again:
            redo = [calls[i] for i in todo if items[i]]
            await DBOS.run_step_async(
                {"name": f"reset {step.id} items"}, reviews.reset, self, redo, step.id
            )
        # Step ids drawn in the items' order now, whatever order they finish in.
        reservations = {i: DBOS.reserve_step() for i in todo}
        gate = asyncio.Semaphore(step.map.concurrency)

        async def one(index: int) -> None:
            async with gate:
                items[index] = await reservations[index].run_async(
                    {"name": f"call {calls[index].id}", "preemptible": True},
                    self._retrying,
                    calls[index],
                    step.id,
                    {"item": values[index], "index": index},
                )

        await asyncio.gather(*(one(i) for i in todo))
        stopped: dict[str, Any] | None = None
        for index in todo:  # in the items' order, one after the other
            if items[index].get("state") not in WAITING:
                continue
            if stopped is not None:  # the map ends anyway: nobody is asked for it
                items[index] = await self._dismissed(calls[index], step.id, stopped)
                continue
            scope = {"item": values[index], "index": index}
            items[index] = await self._go_on(calls[index], step.id, items[index], scope)
            if _stops(items[index]):
                stopped = items[index]
        if stopped is not None and stopped["state"] in ENDS_RUN:
            # A human said no: the run ends so, as for a call step.
            await self.mark(step.id, "map", "failed", error=stopped["error"])
            return stopped
        failures = [(i, o) for i, o in enumerate(items) if o.get("state") != "completed"]
        outcome: dict[str, Any]
        if failures:
            said = "; ".join(f"[{i}]: {o.get('error')}" for i, o in failures[:5])
            more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
            outcome = failed(f"{len(failures)} of {len(items)} items failed: {said}{more}")
            if any(o.get("fatal") for _, o in failures):
                outcome["fatal"] = True  # the run's grant is unusable: no review helps
        else:
            output = [o["output"] for o in items]
            outcome = {"state": "completed", "output": output, "text": "", "error": None}
        await self.mark(
            step.id, "map", str(outcome["state"]), output=outcome["output"], error=outcome["error"]
        )
        return outcome

    # Parallel ------------------------------------------------------------------------

    async def _parallel(self, step: ParallelStep) -> dict[str, Any]:
        """The branches at once, joined. A branch with ``on_error: checkpoint``
        that fails keeps the join open; once every branch has settled, if the
        join is not met but could be, the workflow asks about each such branch
        in turn (`reviews.call_reviewed`). The step's own ``on_error:
        checkpoint`` asks when the join is not met: approved, the branches
        that did not complete run again, those that did keep their outputs."""
        await self.enter(step.id, "parallel")
        outcomes: dict[str, dict[str, Any]] = {}
        outcome = await self._join(step, outcomes)
        if step.on_error != "checkpoint":
            return outcome

        async def again() -> dict[str, Any]:
            return await self._join(step, outcomes, again=True)

        saying = "run the branches that did not complete again"
        return await reviews.reviewed(self, step.id, "parallel", outcome, again, saying)

    async def _join(
        self, step: ParallelStep, outcomes: dict[str, dict[str, Any]], again: bool = False
    ) -> dict[str, Any]:
        branches = step.parallel.branches
        kept = ("completed", "skipped")
        todo = [b for b in branches if outcomes.get(b.id, {}).get("state") not in kept]
        if again:
            await DBOS.run_step_async(
                {"name": f"reset {step.id} branches"}, reviews.reset, self, todo, step.id
            )
            for branch in todo:
                del outcomes[branch.id]
        # Step ids for every branch, drawn in order now: the branches then run
        # at once, and a replay finds each one's record under the same id.
        reservations = {b.id: DBOS.reserve_step() for b in todo}
        decided = asyncio.Event()

        async def one(branch: CallStep) -> None:
            outcome = await reservations[branch.id].run_async(
                {"name": f"call {branch.id}", "preemptible": True},
                self._branch,
                branch,
                step.id,
                decided,
            )
            outcomes[branch.id] = outcome
            self.ctx["steps"][branch.id] = seen(outcome)
            if join_verdict(step, outcomes) is not None:
                decided.set()

        await asyncio.gather(*(one(b) for b in todo))
        ended = await self._go_on_waiting(step, outcomes)
        if ended is not None:  # a human said no: the run ends so
            await self.mark(step.id, "parallel", "failed", error=ended["error"])
            return ended
        if (
            join_verdict(step, outcomes, hopeful=False) != "met"
            and join_verdict(step, outcomes) is None
        ):
            ended = await self._review_branches(step, outcomes)
            if ended is not None:  # rejected, withdrawn, or still failing: the run ends
                await self.mark(step.id, "parallel", "failed", error=ended["error"])
                return ended
        # Keyed by the branches' ids as the flow names them: in a loop's round
        # "b#2" is recorded, and read as steps.p.output.b (docs/flows.md).
        done = {
            b.id.partition("#")[0]: outcomes[b.id]["output"]
            for b in branches
            if outcomes[b.id]["state"] == "completed"
        }
        outcome: dict[str, Any]
        if join_verdict(step, outcomes, hopeful=False) == "met":
            outcome = {"state": "completed", "output": done, "text": "", "error": None}
        else:
            join = _join_name(step.parallel.join)
            errors = "; ".join(
                f"{b.id}: {outcomes[b.id]['error']}" for b in branches if outcomes[b.id]["error"]
            )
            outcome = failed(f"join {join} not met ({errors or 'no branch completed'})")
        await self.mark(
            step.id,
            "parallel",
            str(outcome["state"]),
            output=outcome["output"],
            error=outcome["error"],
        )
        return outcome

    async def _go_on_waiting(
        self, step: ParallelStep, outcomes: dict[str, dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Each branch whose call waits for someone, in the branches' order,
        gone on with by the workflow (`reviews.go_on`) while the join is
        undecided; once it is decided, the rest are not needed. The outcome
        that ends the run, if one does (an approval rejected)."""
        stopped: dict[str, Any] | None = None
        for branch in step.parallel.branches:
            outcome = outcomes.get(branch.id, {})
            if outcome.get("state") not in WAITING:
                continue
            if stopped is not None or join_verdict(step, outcomes) is not None:
                outcome = await self._dismissed(branch, step.id, stopped)
            else:
                outcome = await self._go_on(branch, step.id, outcome)
                if _stops(outcome):
                    stopped = outcome
            outcomes[branch.id] = outcome
            self.ctx["steps"][branch.id] = seen(outcome)
        return stopped

    async def _go_on(
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

    async def _dismissed(
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

    async def _review_branches(
        self, step: ParallelStep, outcomes: dict[str, dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Each failed branch with ``on_error: checkpoint``, in the branches'
        order, put to a human by the workflow -- one review after the other,
        never from the concurrent part, so a replay draws the same ids -- until
        the join is decided. The outcome that ends the run, if one does."""
        waiting = [b for b in step.parallel.branches if _reviewable(b, outcomes[b.id])]
        for branch in waiting:
            if (
                join_verdict(step, outcomes, hopeful=False) == "met"
                or join_verdict(step, outcomes) == "lost"
            ):
                break
            outcome = await reviews.call_reviewed(self, branch, outcomes[branch.id], step.id)
            outcomes[branch.id] = outcome
            self.ctx["steps"][branch.id] = seen(outcome)
            if outcome["state"] in ("rejected", "canceled") or outcome.get("fatal"):
                return outcome
        return None

    async def _branch(
        self, branch: CallStep, parent: str, decided: asyncio.Event
    ) -> dict[str, Any]:
        """One branch (a DBOS step): its call, unless the join is decided first."""
        if branch.when is not None and not truthy(evaluate(branch.when, self.ctx)):
            await self.mark(
                branch.id, "call", "skipped", parent=parent, error="its when did not hold"
            )
            return {"state": "skipped", "output": None, "text": "", "error": None}
        if decided.is_set():
            return await self._not_needed(branch, parent)
        call = asyncio.ensure_future(self._retrying(branch, parent))
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


def _join_name(join: Any) -> str:
    return f"quorum {join.quorum}" if isinstance(join, Quorum) else str(join)


def _reviewable(branch: CallStep, outcome: dict[str, Any]) -> bool:
    """A branch that failed and asks a human (its run's grant still usable)."""
    failed_ = outcome["state"] == "failed" and not outcome.get("fatal")
    return failed_ and branch.on_error == "checkpoint"


def join_verdict(
    step: ParallelStep, outcomes: dict[str, dict[str, Any]], hopeful: bool = True
) -> str | None:
    """The join: "met", "lost", or None while undecided. ``hopeful``: a branch
    awaiting its review, or waiting for someone (`WAITING`), is as one still
    running (it may yet complete)."""
    join = step.parallel.join
    branches = step.parallel.branches
    needed = len(branches) if join == "all" else join.quorum if isinstance(join, Quorum) else 1
    done = running = 0
    for branch in branches:
        outcome = outcomes.get(branch.id)
        if outcome is None:
            running += 1
            continue
        # For all, a branch skipped -- by its when, or past its failure by
        # on_error: skip (as docs/flows.md has it) -- counts as one done.
        passed = outcome["state"] == "skipped" or (
            branch.on_error == "skip" and outcome["state"] == "failed" and not outcome.get("fatal")
        )
        if outcome["state"] == "completed" or (join == "all" and passed):
            done += 1
        elif hopeful and (_reviewable(branch, outcome) or outcome["state"] in WAITING):
            running += 1
    if done >= needed:
        return "met"
    return "lost" if done + running < needed else None
