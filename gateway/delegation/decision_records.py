"""What the audit and the traces say of one delegation decision: the record
`Delegations` writes for it, and its spans' attributes (who, what, for which
front-door operation; never a token or a message)."""

from __future__ import annotations

import time
from typing import Any

from adapters import spans
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.permits import Caller
from policies.policy import ActionKind, Decision


def span_facts(
    caller: Caller, target: str, action: str | None, event: str
) -> dict[str, str | int | float | bool]:
    """What a span of this delegation says: who (as tracing shows a subject),
    what, for which front-door operation. No token, no message."""
    facts: dict[str, str | int | float | bool] = {
        "switchboard.target": target,
        "switchboard.event": event,
        "switchboard.subject": spans.subject(caller.subject),
        "switchboard.depth": len(caller.actors),
        # The act chain (RFC 8693 section 4.1), oldest first, shown as the
        # subject is (an actor may be a user's id). No convention names it.
        "switchboard.act": ",".join(spans.subject(actor) for actor in caller.actors),
    }
    if action:
        facts["switchboard.action"] = action
    return facts


def decision_facts(decision: Decision) -> dict[str, str | int | float | bool]:
    facts: dict[str, str | int | float | bool] = {
        "switchboard.decision": "allow" if decision.allowed else "deny",
        "switchboard.approval_required": decision.approval_required,
        # The scopes the minted token carries (space-separated, as OAuth writes them).
        "switchboard.scopes": " ".join(sorted(decision.granted)),
    }
    if decision.denial is not None:
        facts["switchboard.denial"] = str(decision.denial)
    return facts


def decided_on(
    scopes: frozenset[str] | list[str], kind: ActionKind, approval: bool
) -> dict[str, Any]:
    """What a policy decision was made on beyond what its record says
    already: the caller's scopes, the kind of action, whether the policy
    asked for approval. What a what-if decides the call again from
    (`gateway.delegation.whatif`); scopes are no secret, no token is kept."""
    return {"scopes": sorted(scopes), "kind": kind, "approval": approval}


def held_on(outcome: str, scopes: list[str], kind: ActionKind) -> dict[str, Any] | None:
    """`decided_on` for an approval's record: a call held for approval, or
    deferred, is a decision of the policy; what becomes of it later
    (approved, expired) is not."""
    if outcome not in ("approval_required", "deferred"):
        return None
    return decided_on(scopes, kind, outcome == "approval_required")


def decision_event(
    event: str,
    trace_id: str,
    caller: Caller,
    agent_id: str,
    action: str | None,
    requested: frozenset[str] | None,
    decision: Decision,
    started: float,
    *,
    outcome: str | None = None,
    detail: str | None = None,
    kind: ActionKind = "skill",
) -> AuditEvent:
    return AuditEvent(
        event=event,
        trace_id=trace_id,
        subject=caller.subject,
        subject_issuer=caller.issuer,
        client_id=caller.client_id,
        actors=caller.actors,
        target=agent_id,
        action=action,
        scopes_requested=requested,
        scopes_granted=decision.granted,
        decision="allow" if decision.allowed else "deny",
        reasons=decision.reasons,
        outcome=outcome or ("ok" if decision.allowed else "denied"),
        detail=detail,
        latency_ms=(time.perf_counter() - started) * 1000,
        decided_on=decided_on(caller.scopes, kind, decision.approval_required),
    )


def refused_event(
    caller: Caller, agent_id: str, event: str, trace_id: str, reason: str, outcome: str
) -> AuditEvent:
    """A request refused before it could be decided (it names two skills,
    say, or an agent that does not exist): a denial with no decision behind
    it and no token. The target as the caller named it, cut to the column's
    64 characters (an unknown id can be anything)."""
    return AuditEvent(
        event=event,
        trace_id=trace_id,
        subject=caller.subject,
        subject_issuer=caller.issuer,
        client_id=caller.client_id,
        actors=caller.actors,
        target=agent_id[:64],
        decision="deny",
        outcome=outcome,
        reasons=(reason,),
    )
