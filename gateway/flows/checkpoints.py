"""A checkpoint: the run waits for a human on the approvals desk.

Opening it (a DBOS step) writes a pending approval of kind ``flow`` -- its id
derived from the run and the step, so a replay finds the same one -- and puts
the run's A2A task in ``TASK_STATE_INPUT_REQUIRED`` with the prompt and the
approval id. An admin decides it like any other (`POST /approvals/{id}`,
`switchboard approvals approve`); the desk tells the engine, which wakes the
run with a DBOS message (`notify`).

The wait is a loop of recorded operations: read the approval's state and the
clock (one step; the first read is the opening's own), then `DBOS.recv` for
at most the time left (a durable timer). A replay reads the same states and
times, so it takes the same path; a lost wake-up costs at most the time
between two looks
(`FlowSettings.checkpoint_poll_seconds`, doubling up to 15 minutes:
`gateway.flows.looks`).

Outcomes: approved -- the step completes with ``{"approved": true, "by",
"reason"}``; rejected -- the run ends ``rejected``; no decision before
``timeout_seconds`` -- the approval is withdrawn ("timed out") and
``on_timeout`` says: ``fail`` the run, or ``continue`` (the step completes
with ``{"approved": false, "timed_out": true}``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from dbos import DBOS

from gateway.delegation.approvals import (
    PENDING,
    WITHDRAWN,
    AlreadyDecided,
    Approval,
    ApprovalNotFound,
)
from gateway.flows import mailbox
from gateway.flows.deep_approvals import link
from gateway.flows.definition import CheckpointStep
from gateway.flows.expressions import evaluate
from gateway.flows.looks import next_look
from gateway.flows.run_access import RunAccess

TIMED_OUT = "timed out"


def approval_id(run_id: str, step_id: str) -> str:
    return "apr_" + hashlib.sha256(f"{run_id}/{step_id}".encode()).hexdigest()[:32]


def topic(step_id: str) -> str:
    return f"checkpoint:{step_id}"


async def notify(approval: Approval) -> None:
    """Wake the run waiting on ``approval`` (a desk listener)."""
    if approval.kind == "flow" and approval.task_id and approval.action:
        await mailbox.send(approval.task_id, approval.state, topic(approval.action))


async def wait(
    run: RunAccess,
    step: CheckpointStep,
    question: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``question``: an agent's question put to a reviewer (`gateway.flows.
    answerers`), shown as it is and kept in the approval's request, so the
    desk approves it only with an answer. ``scope``: what ``show`` reads
    besides the run's (a held map item's ``item``)."""
    context = {**run.ctx, **scope} if scope else run.ctx
    try:
        shown = evaluate(step.checkpoint.show, context) if step.checkpoint.show else question
    except Exception as exc:
        return {"state": "failed", "output": None, "text": "", "error": f"show: {exc}"}
    opened = await DBOS.run_step_async(
        {"name": f"open {step.id}"}, _open, run, step, shown, question is not None
    )
    deadline = float(opened["deadline"])
    poll = run.rt.settings.checkpoint_poll_seconds
    looks = 0
    # Opening looked already: its record carries the approval's state and the
    # clock, so the first recorded look is the open itself. A run opened by an
    # older gateway recorded an open without them and a "check" after it: a
    # replay of that run looks again, so it asks DBOS for the operations it
    # recorded, in their order.
    seen: dict[str, Any] | None = opened if "state" in opened else None
    while True:
        if seen is None:
            seen = await DBOS.run_step_async(
                {"name": f"check {step.id}"}, _check, run, opened["id"]
            )
        looks += 1
        if seen["state"] != PENDING:
            break
        if seen["now"] >= deadline:
            seen = await DBOS.run_step_async(
                {"name": f"expire {step.id}"}, _expire, run, opened["id"]
            )
            break
        await DBOS.recv_async(
            topic(step.id),
            timeout_seconds=max(0.01, min(deadline - seen["now"], next_look(poll, looks))),
        )
        seen = None
    return await DBOS.run_step_async({"name": f"close {step.id}"}, _close, run, step, seen)


async def _open(run: RunAccess, step: CheckpointStep, shown: Any, asks: bool) -> dict[str, Any]:
    rt, info = run.rt, run.info
    ident = approval_id(run.run_id, step.id)
    try:
        approval = await rt.approvals.get(ident)
    except ApprovalNotFound:
        caller = await rt.caller(info["grant_id"])
        approval = await rt.approvals.hold(
            ident,
            kind="flow",
            caller=caller,
            target=info["flow_id"],
            action_kind="skill",
            action=step.id,
            request={
                "run": run.run_id,
                "checkpoint": step.id,
                "prompt": step.checkpoint.prompt,
                "show": shown,
                **({"question": shown} if asks else {}),
            },
            reasons=[f"flow {info['flow_id']}, step {step.id}: {step.checkpoint.prompt}"],
            trace_id=info["trace_id"],
            task_id=run.run_id,
            context_id=info["context_id"],
        )
        await rt.approvals.audit_request(approval, "flow.checkpoint")
    await run.mark(
        step.id,
        "checkpoint",
        "waiting",
        approval_id=ident,
        input={"prompt": step.checkpoint.prompt, "show": shown},
        started_at=approval.created_at,
    )
    await rt.store.set_run(run.run_id, current_step=step.id)
    await rt.publish(
        info,
        "input_required",
        f"{step.checkpoint.prompt} (waiting for an admin's approval {ident})",
        # Who raised it: a run calling this flow shows it as its own (`deep_approvals`).
        metadata={"approval": ident, "chain": [link(info["flow_id"], run.run_id, step.id)]},
    )
    return {
        "id": ident,
        "deadline": approval.created_at.timestamp() + step.checkpoint.timeout_seconds,
        # The first look (`wait`): an approval found here may be decided already.
        **_looked(approval),
    }


async def _check(run: RunAccess, ident: str) -> dict[str, Any]:
    return _looked(await run.rt.approvals.get(ident))


def _looked(approval: Approval) -> dict[str, Any]:
    """What one look at the approval saw, and when (a replay sees the same)."""
    return {
        "state": approval.state,
        "by": approval.decided_by,
        "reason": approval.reason,
        "now": time.time(),
    }


async def _expire(run: RunAccess, ident: str) -> dict[str, Any]:
    try:
        approval = await run.rt.approvals.decide(ident, WITHDRAWN, "switchboard", TIMED_OUT)
        await run.rt.approvals.audit_decision(approval)
    except AlreadyDecided as decided:
        approval = decided.approval  # decided at the last moment: that decision counts
    return {"state": approval.state, "by": approval.decided_by, "reason": approval.reason, "now": 0}


async def _close(run: RunAccess, step: CheckpointStep, seen: dict[str, Any]) -> dict[str, Any]:
    state, by, reason = seen["state"], seen.get("by"), seen.get("reason")
    said = f" by {by}" + (f": {reason}" if reason else "")
    if state == "approved":
        outcome = {"approved": True, "by": by, "reason": reason}
        await run.mark(step.id, "checkpoint", "completed", output=outcome)
        await run.rt.publish(run.info, "working", f"{step.id} approved{said}")
        return {"state": "completed", "output": outcome, "text": "", "error": None}
    if state == WITHDRAWN and reason == TIMED_OUT and by == "switchboard":
        timeout = f"no decision within {step.checkpoint.timeout_seconds:g} s"
        if step.checkpoint.on_timeout == "continue":
            outcome = {"approved": False, "timed_out": True}
            await run.mark(step.id, "checkpoint", "completed", output=outcome, error=timeout)
            await run.rt.publish(run.info, "working", f"{step.id}: {timeout}; going on")
            return {"state": "completed", "output": outcome, "text": "", "error": None}
        await run.mark(step.id, "checkpoint", "failed", error=timeout)
        return {"state": "failed", "output": None, "text": "", "error": timeout, "fatal": True}
    if state == "rejected":
        error = f"rejected{said}"
        await run.mark(step.id, "checkpoint", "failed", error=error)
        return {"state": "rejected", "output": None, "text": "", "error": f"{step.id} {error}"}
    await run.mark(step.id, "checkpoint", "canceled", error=f"withdrawn{said}")
    return {"state": "canceled", "output": None, "text": "", "error": f"{step.id} withdrawn{said}"}
