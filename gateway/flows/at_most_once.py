"""What a call step records to send its call at most once across a crash.

A step's row gets ``sent_at`` just before its call is sent; when DBOS runs
the step again after a crash, `gateway.flows.calls.StepCall` reads that row
and re-attaches to the agent's task, sends again (an idempotent target) or
refuses to (any other). Each of those is recorded here:

* the send the crash interrupted gets its audit record now, from what the
  row kept of it (its token, when it was sent), saying what the step does
  about it (`interrupted`);
* a call not sent again says why (`outcome_unknown`);
* a call decided but whose "sent" could not be written is not sent: it ends
  unsent and recorded, its coordination lease and budget given back at once
  rather than at their expiry (`ended_unsent_if_failed`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping
from typing import Any

from gateway.delegation.interrupted import SentCall, record_interrupted
from gateway.delegation.pipeline import Grant
from gateway.flows.definition import CallStep
from gateway.flows.runtime import FlowRuntime
from gateway.flows.step_admission import EVENT, CallContext
from gateway.flows.step_errors import StepFailed
from gateway.storage.outages import outage_of
from registry.tables import as_utc


async def interrupted(
    runtime: FlowRuntime,
    call: CallContext,
    step: CallStep,
    known: Mapping[str, Any],
    then: str,
    target: str | None = None,
) -> None:
    """The record of the send a crash interrupted (`gateway.delegation.
    interrupted`), from what the step's record ``known`` kept of it; ``then``:
    what the step does now. ``target``: as the audit names it (an MCP tool's
    server), if not the step's."""
    token = known.get("token") or {}
    sent = SentCall(
        event=EVENT,
        trace_id=call.trace_id,
        caller=call.caller,
        target=target or step.call.target,
        action=step.call.skill if step.call.agent is not None else step.call.tool,
        token_id=token.get("jti"),
        scopes=token.get("scopes") or (),
        sent_at=as_utc(known["sent_at"]),
    )
    await record_interrupted(runtime.delegations.audit, sent, then)


def outcome_unknown(step: CallStep) -> str:
    """Why a call sent before a crash is not sent again."""
    return (
        f"{step.call.target} may have received this call before the gateway stopped, "
        "and its outcome is unknown; it is not idempotent, so it is not sent again"
    )


async def ended_unsent_if_failed(
    runtime: FlowRuntime, step: CallStep, permit: Grant, write: Awaitable[None]
) -> None:
    """A write between a call's admission and its send: if it fails, the
    call ends unsent and recorded (its coordination lease and budget
    given back at once, not at their expiry) and the step fails (its
    on_error applies); a dependency outage goes on as it is. A
    cancellation is recorded by the call held open around it
    (`StepAdmission.decide`, `Delegate.open`), as any unsent end is."""
    try:
        await write
    except Exception as exc:
        detail = f"not sent: the step's record could not be written: {exc}"
        if outage_of(exc) is not None:
            await _unsent(runtime, permit, "dependency_unavailable", detail)
            raise
        await _unsent(runtime, permit, "not_sent", detail)
        raise StepFailed(f"{step.call.target}: {detail}") from exc


async def _unsent(runtime: FlowRuntime, permit: Grant, outcome: str, detail: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(runtime.delegate.record(permit, EVENT, outcome, detail))
