"""`on_error: checkpoint`: a call step that fails asks a human what next.

The step's failure (after its retries and fallback) opens a checkpoint on the
approvals desk -- recorded as the step ``<id>_review<n>``, with the error in
its prompt -- and the run waits as at any checkpoint (`gateway.flows.
checkpoints`): approved, the step is called again, from scratch (its record
reset in a recorded operation of its own, so a crash during the new attempt
re-attaches to it like any call); rejected, the run ends `rejected`; no
decision within a day, the run fails. At most `MAX_REVIEWS` rounds: a step
still failing after them fails the run.

Approving a call again is the human's decision to send it again, idempotent
target or not; that is what the review is for.
"""

from __future__ import annotations

from typing import Any, Protocol

from dbos import DBOS

from gateway.flows import checkpoints
from gateway.flows.definition import (
    MAX_REVIEWS,
    CallStep,
    Checkpoint,
    CheckpointStep,
)
from gateway.flows.runtime import FlowRuntime

REVIEW_TIMEOUT_SECONDS = 86400.0


class FlowRun(checkpoints.FlowRun, Protocol):
    rt: FlowRuntime
    run_id: str

    async def _call(
        self, step: CallStep, parent: str | None, scope: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...


def review_step(step: CallStep, round_: int, error: str) -> CheckpointStep:
    prompt = (
        f"Step {step.id} ({step.call.target}) failed: {error}"[:1800]
        + " -- approve to call it again, reject to end the run."
    )
    return CheckpointStep(
        id=f"{step.id}_review{round_}",
        checkpoint=Checkpoint(prompt=prompt, timeout_seconds=REVIEW_TIMEOUT_SECONDS),
    )


async def call_with_review(run: FlowRun, step: CallStep) -> dict[str, Any]:
    outcome = await DBOS.run_step_async(
        {"name": f"call {step.id}", "preemptible": True}, run._call, step, None
    )
    if step.on_error != "checkpoint":
        return outcome
    for round_ in range(1, MAX_REVIEWS + 1):
        if outcome["state"] != "failed" or outcome.get("fatal"):
            return outcome
        decided = await checkpoints.wait(run, review_step(step, round_, str(outcome["error"])))
        if decided["state"] != "completed":
            return decided  # rejected or withdrawn: the run ends so; timed out: fails
        await DBOS.run_step_async({"name": f"reset {step.id}"}, _reset, run, step)
        outcome = await DBOS.run_step_async(
            {"name": f"call {step.id} again", "preemptible": True}, run._call, step, None
        )
    if outcome["state"] == "failed":
        error = f"{outcome['error']} (still, after {MAX_REVIEWS} reviews)"
        return {**outcome, "error": error, "fatal": True}
    return outcome


async def _reset(run: FlowRun, step: CallStep) -> None:
    """The step's record as before a first attempt: nothing sent, no task."""
    await run.rt.store.set_step(
        run.run_id,
        step.id,
        state="pending",
        attempts=0,
        sent_at=None,
        upstream_task_id=None,
        output=None,
        error=None,
        target=step.call.target,
        action=step.call.skill,
    )
