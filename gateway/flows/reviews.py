"""`on_error: checkpoint`: a step that fails asks a human what next; and a
call's attempts, with the backoff between them a durable DBOS sleep.

The step's failure (after its retries and fallback) opens a checkpoint on the
approvals desk -- recorded as the step ``<id>_review<n>``, with the error in
its prompt -- and the run waits as at any checkpoint (`gateway.flows.
checkpoints`): approved, the step is called again, from scratch (its record
reset in a recorded operation of its own, so a crash during the new attempt
re-attaches to it like any call); rejected, the run ends `rejected`; no
decision within a day, the run fails. At most `MAX_REVIEWS` rounds: a step
still failing after them fails the run.

The same holds for a parallel branch (asked once its siblings have settled,
if the join could still be met), and for a map or a parallel step as a whole
(`gateway.flows.fanout`: approved, what did not complete is run again; what
did is kept). Each review is opened by the workflow itself, one after the
other, never from the concurrent part of a fan-out: the ids DBOS gives its
operations then follow the recorded outcomes only, so a run resumed while a
review waits finds the same approval, and the same place in the walk.

Approving a call again is the human's decision to send it again, idempotent
target or not; that is what the review is for.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from dbos import DBOS

from gateway.flows import answerers, checkpoints, consents, questions
from gateway.flows.definition import (
    MAX_REVIEWS,
    CallStep,
    Checkpoint,
    CheckpointStep,
)
from gateway.flows.outcomes import AUTH_REQUIRED, HELD, RETRYING, failed
from gateway.flows.preemption import cancellable
from gateway.flows.run_access import RunAccess
from gateway.flows.runtime import FlowRuntime
from gateway.flows.step_records import shortened

REVIEW_TIMEOUT_SECONDS = 86400.0
# How often one step may wait for its user to connect and then find them not
# connected still (a disconnect meanwhile, another user's word).
MAX_CONSENT_ROUNDS = 5


class ReviewedRun(RunAccess, Protocol):
    rt: FlowRuntime
    run_id: str

    async def call_attempt(
        self,
        step: CallStep,
        parent: str | None,
        scope: dict[str, Any] | None = None,
        reply: questions.Answer | None = None,
        approved: bool = False,
    ) -> dict[str, Any]: ...

    async def give_up(self, step: CallStep, ended: dict[str, Any]) -> None: ...


def review_step(
    step_id: str, what: str, round_: int, error: str, again: str = "call it again"
) -> CheckpointStep:
    prompt = (
        f"Step {step_id} ({what}) failed: {error}"[:1800]
        + f" -- approve to {again}, reject to end the run."
    )
    return CheckpointStep(
        id=f"{step_id}_review{round_}",
        checkpoint=Checkpoint(prompt=prompt, timeout_seconds=REVIEW_TIMEOUT_SECONDS),
    )


async def called(
    run: ReviewedRun,
    step: CallStep,
    name: str,
    parent: str | None = None,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A call made by the workflow itself: each attempt a DBOS step, and the
    backoff between two a durable DBOS sleep -- after a crash during it the
    run waits only for what is left, then makes the next attempt (the step's
    record says which: none is made twice). Then `go_on`. ``scope``: what
    its expressions read besides the run's (a map's item)."""
    outcome = await _attempts(run, step, name, parent, scope)
    return await go_on(run, step, name, outcome, parent, scope)


async def go_on(
    run: ReviewedRun,
    step: CallStep,
    name: str,
    outcome: dict[str, Any],
    parent: str | None = None,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A call's ``outcome`` that waits for someone, waited for by the
    workflow until the call has an outcome of its own: a call that needs its
    user to connect an account first waits for that (`gateway.flows.
    consents`), then is made again from scratch (nothing was sent); an agent
    that asks is answered (`gateway.flows.answerers`); a call the policy
    holds is approved on the desk, then made. Also for a map's item or a
    parallel branch once its fan-out has settled (`gateway.flows.fanout`)."""
    consented = asked = held = 0
    approved = False  # the call was made with a human's approval: so are its answers
    while True:
        if outcome["state"] == AUTH_REQUIRED:
            if consented == MAX_CONSENT_ROUNDS:
                return {**failed(str(outcome["error"])), "fatal": True}
            consented += 1
            if not await consents.wait(run, step.id, outcome, consented):
                return consents.timed_out(outcome, run.rt.settings.consent_timeout_seconds)
            await DBOS.run_step_async(
                {"name": f"reset {step.id} after consent {consented}"}, reset, run, [step]
            )
            outcome = await _attempts(
                run, step, f"{name}, after consent {consented}", parent, scope
            )
        elif questions.asked(outcome):
            # The agent asks: whoever the flow names answers (`gateway.flows.
            # answerers`), and the answer goes to the task that asked.
            if asked == questions.MAX_QUESTIONS:
                return await _given_up(run, step, questions.too_many(outcome), asked)
            asked += 1
            answered = await answerers.answer(run, step, outcome, asked, scope)
            if answered.reply is None:
                ended = answered.ended or failed(str(outcome["error"]))
                return await _given_up(run, step, ended, asked)
            outcome = await DBOS.run_step_async(
                {"name": f"{name}, answer {asked}"},
                cancellable(run.call_attempt),
                step,
                parent,
                scope,
                questions.Answer(asked, answered.reply, str(outcome.get("status"))),
                approved,
            )
        elif outcome["state"] == HELD:
            # The policy holds every call to the target for a human: the
            # call becomes a checkpoint of its own, then is made approved.
            if held == MAX_REVIEWS:
                return {**failed(str(outcome["error"])), "fatal": True}
            held += 1
            outcome, approved = await _approved(run, step, name, outcome, held, parent, scope)
            if not approved:
                return outcome
        else:
            return outcome


async def _approved(
    run: ReviewedRun,
    step: CallStep,
    name: str,
    outcome: dict[str, Any],
    held: int,
    parent: str | None,
    scope: dict[str, Any] | None,
) -> tuple[dict[str, Any], bool]:
    """The ``held``-th call the policy held, as a checkpoint of its own: the
    approved call's outcome (True), or the decision that was not approval."""
    # A key of its own (recorded): a step called again after a review
    # is held for a new decision, not let go by the earlier one.
    key = await DBOS.run_step_async(
        {"name": f"approval key {step.id} {held}"}, secrets.token_hex, 3
    )
    ask = approval_step(step, held, str(outcome["error"]), key)
    decided = await checkpoints.wait(run, ask, scope=scope)
    if decided["state"] != "completed" or not decided["output"].get("approved"):
        return decided, False
    # Nothing was sent while it was held (a tool's record may say
    # "sent" from before the decision): the approved call starts clean.
    await DBOS.run_step_async(
        {"name": f"reset {step.id} after approval {held}"}, reset, run, [step]
    )
    made = await _attempts(run, step, f"{name}, approved {held}", parent, scope, approved=True)
    return made, True


async def _given_up(
    run: ReviewedRun, step: CallStep, ended: dict[str, Any], round_: int
) -> dict[str, Any]:
    """No answer to the agent's question ``round_``: its task is cancelled (it
    would wait for one forever) and the step's record says why, in a
    recorded operation."""
    await DBOS.run_step_async({"name": f"give up {step.id} {round_}"}, run.give_up, step, ended)
    return ended


async def _attempts(
    run: ReviewedRun,
    step: CallStep,
    name: str,
    parent: str | None,
    scope: dict[str, Any] | None = None,
    *,
    approved: bool = False,
) -> dict[str, Any]:
    call = cancellable(run.call_attempt)
    outcome = await DBOS.run_step_async({"name": name}, call, step, parent, scope, None, approved)
    while outcome["state"] == RETRYING:
        await DBOS.sleep_async(float(outcome["backoff"]))
        outcome = await DBOS.run_step_async(
            {"name": f"{name}, retry"},
            call,
            step,
            parent,
            scope,
            None,
            approved,
        )
    return outcome


def approval_step(step: CallStep, round_: int, reason: str, key: str) -> CheckpointStep:
    """The checkpoint a held call becomes, ``<id>:approval<n>.<key>`` -- a
    ':' no step id has, so it is no step of the flow's own; a long id is
    shortened with a digest to fit the step column. It shows the call's input
    (the step's own expression), as a held call shows its request."""
    ident = f"{step.id}:approval{round_}.{key}"
    if len(ident) > 64:
        ident = f"{shortened(step.id)}:approval{round_}.{key}"
    prompt = f"Step {step.id}: {reason}"[:1900] + " -- approve the call?"
    return CheckpointStep.model_construct(
        id=ident,
        checkpoint=Checkpoint(
            prompt=prompt, show=step.input, timeout_seconds=REVIEW_TIMEOUT_SECONDS
        ),
    )


async def call_with_review(run: ReviewedRun, step: CallStep) -> dict[str, Any]:
    outcome = await called(run, step, f"call {step.id}")
    if step.on_error != "checkpoint":
        return outcome
    return await call_reviewed(run, step, outcome)


async def call_reviewed(
    run: ReviewedRun, step: CallStep, outcome: dict[str, Any], parent: str | None = None
) -> dict[str, Any]:
    """A call step's (or a branch's) failed ``outcome`` put to a human."""

    async def again() -> dict[str, Any]:
        await DBOS.run_step_async({"name": f"reset {step.id}"}, reset, run, [step])
        return await called(run, step, f"call {step.id} again", parent)

    return await reviewed(run, step.id, step.call.target, outcome, again)


async def reviewed(
    run: ReviewedRun,
    step_id: str,
    what: str,
    outcome: dict[str, Any],
    again: Callable[[], Awaitable[dict[str, Any]]],
    saying: str = "call it again",
) -> dict[str, Any]:
    """While ``outcome`` is a failure: ask (``<step_id>_review<n>``); approved,
    ``again()`` is the new outcome. At most `MAX_REVIEWS` rounds."""
    for round_ in range(1, MAX_REVIEWS + 1):
        if outcome["state"] != "failed" or outcome.get("fatal"):
            return outcome
        ask = review_step(step_id, what, round_, str(outcome["error"]), saying)
        decided = await checkpoints.wait(run, ask)
        if decided["state"] != "completed":
            return decided  # rejected or withdrawn: the run ends so; timed out: fails
        outcome = await again()
    if outcome["state"] == "failed":
        error = f"{outcome['error']} (still, after {MAX_REVIEWS} reviews)"
        return {**outcome, "error": error, "fatal": True}
    return outcome


async def reset(run: ReviewedRun, steps: Sequence[CallStep], reopened: str | None = None) -> None:
    """The calls' records as before a first attempt: nothing sent, no task;
    and the map or parallel step they belong to (``reopened``) running again
    -- here, in a recorded operation, not in the workflow's code: a replay
    after a crash does not move a step it finished back (`step_records`)."""
    if reopened is not None:
        await run.rt.store.set_step(
            run.run_id, reopened, state="running", error=None, finished_at=None
        )
    for step in steps:
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
