"""What an audit record is: one decision's (`AuditEvent`), and the records of
an action through the API and of a call refused during an outage. The log
that keeps them is `gateway.delegation.audit`."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from adapters.trace_context import new_trace_id
from gateway.delegation.change_events import CHANGE_EVENTS
from policies.tokens import Principal
from registry.tables import as_utc


@dataclass
class AuditEvent:
    event: str  # "token_exchange", "delegate"
    trace_id: str
    subject: str
    subject_issuer: str
    decision: Literal["allow", "deny"]
    outcome: str  # "ok", "denied", "error", "upstream_error", ...
    client_id: str | None = None
    actors: tuple[str, ...] = ()
    target: str | None = None
    action: str | None = None
    scopes_requested: Iterable[str] | None = None
    scopes_granted: Iterable[str] = ()
    reasons: Iterable[str] = ()
    detail: str | None = None
    latency_ms: float = 0.0
    token_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    decided_on: dict[str, Any] | None = None  # `decision_records.decided_on`

    def row(self) -> dict[str, Any]:
        return {
            "at": as_utc(self.at),
            "trace_id": self.trace_id,
            "event": self.event,
            "subject": self.subject,
            "subject_issuer": self.subject_issuer,
            "client_id": self.client_id,
            "actors": list(self.actors),
            "target": self.target,
            "action": self.action,
            "scopes_requested": (
                " ".join(sorted(self.scopes_requested))
                if self.scopes_requested is not None
                else None
            ),
            "scopes_granted": " ".join(sorted(self.scopes_granted)),
            "decision": self.decision,
            "reasons": list(self.reasons),
            "outcome": self.outcome,
            "detail": self.detail[:2000] if self.detail else None,
            "latency_ms": round(self.latency_ms, 3),
            "token_id": self.token_id,
            "decided_on": self.decided_on,
        }


def new_writer_id(replica: str | None = None) -> str:
    """A fresh writer name: the replica's (when it has one), and a random part
    (a restarted process, or a second worker, is a writer of its own)."""
    return f"{replica or 'w'}-{secrets.token_hex(8)}"


def action_event(
    principal: Principal,
    event: str,
    target: str | None,
    *,
    outcome: str = "ok",
    detail: str | None = None,
) -> AuditEvent:
    """The record of something a caller did through the API (an admin's
    change, a user's connection): allowed, under a trace of its own. Its
    ``event`` is one of `CHANGE_EVENTS`, so the decision log can leave it out."""
    if event not in CHANGE_EVENTS:
        raise ValueError(f"{event} is not one of CHANGE_EVENTS")
    return AuditEvent(
        event=event,
        trace_id=new_trace_id(),
        subject=principal.subject,
        subject_issuer=principal.issuer,
        decision="allow",
        outcome=outcome,
        client_id=principal.client_id,
        target=target,
        detail=detail,
    )


def outage_event(
    event: str,
    trace_id: str,
    detail: str,
    *,
    subject: str = "(unknown)",
    issuer: str = "(unknown)",
    client_id: str | None = None,
    actors: tuple[str, ...] = (),
    target: str | None = None,
) -> AuditEvent:
    """The record of a call refused because a dependency is down."""
    return AuditEvent(
        event=event,
        trace_id=trace_id or "0" * 32,
        subject=subject,
        subject_issuer=issuer,
        client_id=client_id,
        actors=actors,
        target=target,
        decision="deny",
        outcome="dependency_unavailable",
        detail=detail,
    )
