"""The `parallel` step: branches -- a call each, or a sequence of steps
(`definition.Lane`, `gateway.flows.lanes`) -- run at once and joined by all,
any or a quorum (`gateway.flows.fanout` says what every fan-out shares)."""

from __future__ import annotations

import asyncio
from typing import Any

from dbos import DBOS

from gateway.flows import lanes, reviews
from gateway.flows.definition import Branch, CallStep, Lane, ParallelStep, Quorum
from gateway.flows.expressions import evaluate
from gateway.flows.fanout import FanOutSteps, stops
from gateway.flows.outcomes import WAITING, failed, seen, truthy
from gateway.flows.preemption import cancellable


class ParallelSteps(FanOutSteps):
    async def _parallel(self, step: ParallelStep) -> dict[str, Any]:
        """The branches at once, joined. A branch with ``on_error: checkpoint``
        that fails keeps the join open; once every branch has settled, if the
        join is not met but could be, the workflow asks about each such branch
        in turn (`reviews.call_reviewed`). The step's own ``on_error:
        checkpoint`` asks when the join is not met: approved, the branches
        that did not complete run again, those that did keep their outputs."""
        await self.enter(step.id, "parallel")
        outcomes: dict[str, dict[str, Any]] = {}
        walked: dict[str, lanes.LaneRun] = {}  # each sequence branch, kept for a run again
        outcome = await self._join(step, outcomes, walked)
        if step.on_error != "checkpoint":
            return outcome

        async def again() -> dict[str, Any]:
            return await self._join(step, outcomes, walked, again=True)

        saying = "run the branches that did not complete again"
        return await reviews.reviewed(self, step.id, "parallel", outcome, again, saying)

    async def _join(
        self,
        step: ParallelStep,
        outcomes: dict[str, dict[str, Any]],
        walked: dict[str, lanes.LaneRun],
        again: bool = False,
    ) -> dict[str, Any]:
        branches = step.parallel.branches
        kept = ("completed", "skipped")
        todo = [b for b in branches if outcomes.get(b.id, {}).get("state") not in kept]
        fresh = {b.id: self._branch_lane(b, step.id) for b in todo if isinstance(b, Lane)}
        runs = {b: walked.get(b) or fresh[b] for b in fresh}
        walked.update(runs)
        if again:
            await self._reset_branches(step, todo, runs, outcomes)
        reservations = _reserve(todo, runs)
        decided = asyncio.Event()

        async def one(branch: Branch) -> None:
            if isinstance(branch, Lane):
                ended = await self._lane_branch(branch, runs[branch.id], decided)
                outcome = ended if ended is not None else dict(runs[branch.id].waiting or {})
            else:
                outcome = await reservations[branch.id].run_async(
                    {"name": f"call {branch.id}"},
                    cancellable(self._branch),
                    branch,
                    step.id,
                    decided,
                )
            outcomes[branch.id] = outcome
            self.ctx["steps"][branch.id] = seen(outcome)
            if join_verdict(step, outcomes) is not None:
                decided.set()

        await asyncio.gather(*(one(b) for b in todo))
        ended = await self._go_on_waiting(step, outcomes, runs)
        self._keep_lane_steps(runs)
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
        outcome = _joined(step, outcomes)
        state = str(outcome["state"])
        await self.mark(
            step.id, "parallel", state, output=outcome["output"], error=outcome["error"]
        )
        return outcome

    async def _reset_branches(
        self,
        step: ParallelStep,
        todo: list[Branch],
        runs: dict[str, lanes.LaneRun],
        outcomes: dict[str, dict[str, Any]],
    ) -> None:
        """Before the branches that did not complete run again: their
        records reset (in one recorded step), their outcomes forgotten."""
        calls = [b for b in todo if isinstance(b, CallStep)]
        others: list[str] = []
        for lane in runs.values():  # each from the step that ended it short
            lane_calls, lane_others = lanes.to_reset(lane, lane.again())
            calls += lane_calls
            others += lane_others
        await DBOS.run_step_async(
            {"name": f"reset {step.id} branches"}, self.reset_again, calls, others, step.id
        )
        for branch in todo:
            del outcomes[branch.id]

    def _keep_lane_steps(self, runs: dict[str, lanes.LaneRun]) -> None:
        """A branch's steps, readable after the parallel step."""
        for lane in runs.values():
            for inner in lane.steps:  # this round's, not a round before's
                self.ctx["steps"].pop(inner.id, None)
            self.ctx["steps"].update(lane.seen)

    async def _go_on_waiting(
        self,
        step: ParallelStep,
        outcomes: dict[str, dict[str, Any]],
        runs: dict[str, lanes.LaneRun],
    ) -> dict[str, Any] | None:
        """Each branch whose call waits for someone, in the branches' order,
        gone on with by the workflow (`reviews.go_on`; a sequence's rest run
        after it) while the join is undecided; once it is decided, the rest
        are not needed. The outcome that ends the run, if one does (an
        approval rejected)."""
        stopped: dict[str, Any] | None = None
        for branch in step.parallel.branches:
            outcome = outcomes.get(branch.id, {})
            if outcome.get("state") not in WAITING:
                continue
            lane = runs.get(branch.id)
            if stopped is not None or join_verdict(step, outcomes) is not None:
                if lane is not None:
                    outcome = await lane.dismiss(self, stopped)
                else:
                    assert isinstance(branch, CallStep)
                    outcome = await self.dismissed(branch, step.id, stopped)
            else:
                if lane is not None:
                    ended = await lane.walk(self, None, settled=True)
                    assert ended is not None  # settled: nothing pauses now
                    outcome = ended
                else:
                    assert isinstance(branch, CallStep)
                    outcome = await self.go_on_waiting_call(branch, step.id, outcome)
                if stops(outcome):
                    stopped = outcome
            outcomes[branch.id] = outcome
            self.ctx["steps"][branch.id] = seen(outcome)
        return stopped

    async def _review_branches(
        self, step: ParallelStep, outcomes: dict[str, dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Each failed branch with ``on_error: checkpoint``, in the branches'
        order, put to a human by the workflow -- one review after the other,
        never from the concurrent part, so a replay draws the same ids -- until
        the join is decided. The outcome that ends the run, if one does."""
        waiting = [
            b
            for b in step.parallel.branches
            if isinstance(b, CallStep) and _reviewable(b, outcomes[b.id])
        ]
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
        return await self.call_unless_decided(branch, parent, decided)

    def _branch_lane(self, branch: Lane, parent: str) -> lanes.LaneRun:
        # In a loop's later round the branch is "<id>#<round>": so are its steps.
        suffix = branch.id[len(branch.id.partition("#")[0]) :]
        return lanes.LaneRun(
            steps=branch.steps,
            record=branch.id,
            parent=parent,
            name=lambda inner: inner + suffix,
            output=branch.output,
        )

    async def _lane_branch(
        self, branch: Lane, lane: lanes.LaneRun, decided: asyncio.Event
    ) -> dict[str, Any] | None:
        """A branch of its own steps: skipped by its ``when``, not needed once
        the join is decided, else walked (None: paused, a call waits)."""
        try:
            holds = branch.when is None or truthy(evaluate(branch.when, self.ctx))
        except Exception as exc:  # a when that cannot be read fails the branch, as a call's
            said = f"when: {exc}"
            await self.mark(branch.id, lanes.KIND, "failed", parent=lane.parent, error=said)
            return failed(said)
        if not holds:
            why = "its when did not hold"
            await self.mark(branch.id, lanes.KIND, "skipped", parent=lane.parent, error=why)
            return {"state": "skipped", "output": None, "text": "", "error": None}
        if decided.is_set():
            await self.mark(branch.id, lanes.KIND, "not_needed", parent=lane.parent)
            return {"state": "not_needed", "output": None, "text": "", "error": None}
        return await lane.walk(self, decided, settled=False)


def _reserve(todo: list[Branch], runs: dict[str, lanes.LaneRun]) -> dict[str, Any]:
    """Step ids for every branch (a sequence's: one per step), drawn in
    order now: the branches then run at once, and a replay finds each
    call's record under the same id."""
    reservations = {}
    for branch in todo:
        if isinstance(branch, Lane):
            runs[branch.id].reserve()
        else:
            reservations[branch.id] = DBOS.reserve_step()
    return reservations


def _joined(step: ParallelStep, outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The parallel step's outcome, once its branches have settled."""
    branches = step.parallel.branches
    # Keyed by the branches' ids as the flow names them: in a loop's round
    # "b#2" is recorded, and read as steps.p.output.b (docs/flows.md).
    done = {
        b.id.partition("#")[0]: outcomes[b.id]["output"]
        for b in branches
        if outcomes[b.id]["state"] == "completed"
    }
    if join_verdict(step, outcomes, hopeful=False) == "met":
        return {"state": "completed", "output": done, "text": "", "error": None}
    join = _join_name(step.parallel.join)
    errors = "; ".join(
        f"{b.id}: {outcomes[b.id]['error']}" for b in branches if outcomes[b.id]["error"]
    )
    return failed(f"join {join} not met ({errors or 'no branch completed'})")


def _join_name(join: Any) -> str:
    return f"quorum {join.quorum}" if isinstance(join, Quorum) else str(join)


def _reviewable(branch: Branch, outcome: dict[str, Any]) -> bool:
    """A branch that failed and asks a human (its run's grant still usable);
    a sequence's steps ask none (`definition.Lane`)."""
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
