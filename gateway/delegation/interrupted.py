"""The audit record of a call the gateway stopped in the middle of.

Audit records are buffered (`gateway.delegation.audit`) and a call's record
is written when its outcome is known, so a gateway killed between sending a
call and hearing its outcome leaves no record of the send -- while the agent
holds a token minted for it. The calls that outlive a process keep what they
sent in the database before sending it: a flow step's record (``sent_at``
and its token, `gateway.flows.calls`), a gateway-run task's row (its token,
`gateway.delegation.task_runner`). Whoever takes such a call over after a
crash -- re-attaching to it, sending it again, or failing it -- writes its
record here first. Written at once, not buffered: a second crash during
recovery must not lose it either.

Not "unless the audit holds a record with its token": a minted token is
reused for the same caller, audience and scopes while it is fresh
(`policies.delegation`), so a later call's record can carry the same jti.
In the narrow case where the crash fell after the call's own record was
written, the two records say the same send twice -- once as it ended, once
as recovery found it -- which is true of both and loses nothing.

The record is an ``allow`` (the call was decided and its token minted before
it was sent), outcome ``interrupted``, at the time the call was sent, with
the token's ``jti`` -- so every token an agent received is in the audit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from adapters.core_check import outside_a_call
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.permits import Caller

OUTCOME = "interrupted"


@dataclass(frozen=True)
class SentCall:
    """What was kept of a call before it was sent."""

    event: str  # the audit event its own record would have had
    trace_id: str
    caller: Caller
    target: str
    action: str | None
    token_id: str | None
    scopes: Iterable[str]
    sent_at: datetime


async def record_interrupted(audit: AuditLog, sent: SentCall, then: str) -> None:
    """Write ``sent``'s record (``then``: what recovery does with the call)."""
    # The call's own `delegate()` died with the process that sent it: this is
    # recovery's record of it, a named exemption (`adapters.core_check`).
    with outside_a_call("recovery: the record of a call a crash cut off"):
        await audit.record_now(_event(sent, then))


def _event(sent: SentCall, then: str) -> AuditEvent:
    caller = sent.caller
    return AuditEvent(
        event=sent.event,
        trace_id=sent.trace_id,
        subject=caller.subject,
        subject_issuer=caller.issuer,
        client_id=caller.client_id,
        actors=caller.actors,
        target=sent.target,
        action=sent.action,
        scopes_granted=tuple(sent.scopes),
        decision="allow",
        reasons=(
            "recorded on recovery: the gateway stopped after sending this call "
            "and before its outcome was recorded",
        ),
        outcome=OUTCOME,
        detail=then,
        token_id=sent.token_id,
        at=sent.sent_at,
    )
