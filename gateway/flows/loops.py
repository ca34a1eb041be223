"""A ``repeat`` step: a block of steps run round after round until its
``until`` holds, at most ``max`` rounds.

Each round runs the block's steps in order, each recorded as a step of its
own named ``<id>#<round>`` (its DBOS operations too: "call draft#2"), so a
round's call is a new call -- its own message id, its own task, its own
approval for a checkpoint -- never the round before's found again. The
run's expressions read the latest round's outputs as ``steps.<id>``; the
repeat's output is ``{rounds, done}``.

Everything a round decides on (a ``when``, ``until``) is read from recorded
outputs, so a replay after a crash takes the same rounds and finds each
step's record where it left it (`gateway.flows.runner`): a SIGKILL mid-loop
goes on in the round it was in.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.flows.back_routes import in_round
from gateway.flows.definition import (
    CallStep,
    CheckpointStep,
    MapStep,
    ParallelStep,
    RepeatStep,
    RouteStep,
    WaitStep,
)
from gateway.flows.expressions import evaluate
from gateway.flows.outcomes import ending, failed, now, seen, truthy
from gateway.flows.run_access import RunAccess

InnerStep = CallStep | ParallelStep | CheckpointStep | MapStep
# A step that does work, as the walk or a block runs it.
Worked = InnerStep | WaitStep | RepeatStep


class LoopingRun(RunAccess, Protocol):
    async def step(self, step: Any) -> dict[str, Any]: ...


def skipped(ctx: dict[str, Any], step: Worked | RouteStep) -> None:
    """``step`` reads as skipped in expressions, and a parallel step's
    branches as not run (not as a round before had them)."""
    ctx["steps"][step.id] = seen({"state": "skipped", "output": None})
    if isinstance(step, ParallelStep):
        for branch, _ in step.branch_ids():
            ctx["steps"].pop(branch, None)


def remember(run: LoopingRun, step: Worked, named: Worked, outcome: dict[str, Any]) -> None:
    """The round's outcome as ``steps.<id>`` (a branch's as its own id);
    ``named``: the step as this round ran it (`in_round`), or ``step``."""
    steps = run.ctx["steps"]
    if named.id != step.id:
        steps.pop(named.id, None)
    steps[step.id] = seen(outcome)
    if isinstance(step, ParallelStep) and isinstance(named, ParallelStep):
        for branch, ran in zip(step.parallel.branches, named.parallel.branches, strict=True):
            if ran.id in steps and ran.id != branch.id:
                steps[branch.id] = steps.pop(ran.id)


async def repeat(run: LoopingRun, step: RepeatStep) -> dict[str, Any]:
    spec = step.repeat
    await run.mark(step.id, "repeat", "running", started_at=now())
    for round_ in range(1, spec.max + 1):
        for inner in spec.steps:
            named = in_round(inner, round_)
            try:
                holds = inner.when is None or truthy(evaluate(inner.when, run.ctx))
            except Exception as exc:
                return await _end(run, step, failed(f"round {round_}: {inner.id}: when: {exc}"))
            if not holds:
                await run.mark(named.id, "skipped", "skipped", error="its when did not hold")
                skipped(run.ctx, inner)
                continue
            outcome = await run.step(named)
            remember(run, inner, named, outcome)
            ended = ending(inner, outcome)
            if ended is not None:
                state, reason = ended
                stopped = {**failed(f"round {round_}: {reason}"), "state": state}
                if outcome.get("fatal"):
                    stopped["fatal"] = True
                return await _end(run, step, stopped)
        try:
            done = truthy(evaluate(spec.until, run.ctx))
        except Exception as exc:
            return await _end(run, step, failed(f"round {round_}: until: {exc}"))
        if done:
            return await _end(run, step, _done(round_, True))
    if spec.on_max == "continue":
        return await _end(run, step, _done(spec.max, False))
    said = f"until did not hold after {spec.max} round(s): {spec.until}"
    return await _end(run, step, failed(said))


def _done(rounds: int, done: bool) -> dict[str, Any]:
    output = {"rounds": rounds, "done": done}
    return {"state": "completed", "output": output, "text": "", "error": None}


async def _end(run: LoopingRun, step: RepeatStep, outcome: dict[str, Any]) -> dict[str, Any]:
    await run.mark(
        step.id, "repeat", str(outcome["state"]), output=outcome["output"], error=outcome["error"]
    )
    return outcome
