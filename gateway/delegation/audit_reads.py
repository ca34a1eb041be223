"""Reading the audit log (`gateway.delegation.audit` writes it): the records
as the API shows them, the filters a query takes, a page of them with its
cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.change_events import CHANGE_EVENTS
from gateway.http.queries import IsoDatetime
from gateway.storage.audit_tables import audit_events
from registry.store import InvalidCursor
from registry.tables import as_utc

_MAX_ID = 2**63 - 1  # BIGINT


class AuditRecord(BaseModel):
    id: int
    at: datetime
    trace_id: str
    event: str
    subject: str
    subject_issuer: str
    client_id: str | None
    actors: list[str]
    target: str | None
    action: str | None
    scopes_requested: list[str] | None
    scopes_granted: list[str]
    decision: str
    reasons: list[str]
    outcome: str
    detail: str | None
    latency_ms: float
    token_id: str | None


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None = None


class AuditQuery(BaseModel):
    user: str | None = Field(default=None, description="the triggering user (sub)")
    agent: str | None = Field(default=None, description="the target agent id")
    trace: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{32}$",
        description="one trace id: every hop of one delegation, across agents (W3C trace-id)",
    )
    decision: Literal["allow", "deny"] | None = None
    kind: Literal["call", "change", "all"] | None = Field(
        default=None,
        description="call: the decisions on delegated calls (the default); change: what "
        "callers changed through the API (an admin's registration, a policy saved, a "
        "connection revoked: `CHANGE_EVENTS`); all: both (the default with a trace)",
    )
    since: IsoDatetime | None = None
    until: IsoDatetime | None = None
    after_id: int | None = Field(
        default=None,
        ge=0,
        le=_MAX_ID,
        description="records after this id, oldest first (for tailing)",
    )
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, description="from a previous page's next_cursor")


async def audit_page(engine: AsyncEngine, query: AuditQuery) -> AuditPage:
    """One page of the records ``query`` matches: newest first, or after an id oldest first."""
    statement = _filtered(select(audit_events), query)
    if query.after_id is not None:
        statement = statement.where(audit_events.c.id > query.after_id).order_by(
            audit_events.c.id.asc()
        )
    else:
        if query.cursor is not None:
            statement = statement.where(audit_events.c.id < _decode_cursor(query.cursor))
        statement = statement.order_by(audit_events.c.id.desc())
    async with engine.connect() as conn:
        rows = (await conn.execute(statement.limit(query.limit + 1))).mappings().all()
    items = [audit_record(r) for r in rows[: query.limit]]
    more = len(rows) > query.limit and query.after_id is None
    return AuditPage(items=items, next_cursor=str(items[-1].id) if more and items else None)


class InvalidAuditCursor(InvalidCursor):
    """Answered 400 by the registry's cursor handler."""


def _decode_cursor(cursor: str) -> int:
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 or int(cursor) > _MAX_ID:
        raise InvalidAuditCursor("cursor is not one this server issued")
    return int(cursor)


def _filtered(statement: Select[Any], query: AuditQuery) -> Select[Any]:
    c = audit_events.c
    if query.user is not None:
        statement = statement.where(c.subject == query.user)
    if query.agent is not None:
        statement = statement.where(c.target == query.agent)
    if query.trace is not None:
        statement = statement.where(c.trace_id == query.trace)
    if query.decision is not None:
        statement = statement.where(c.decision == query.decision)
    kind = query.kind or ("all" if query.trace is not None else "call")
    if kind == "call":
        statement = statement.where(c.event.not_in(CHANGE_EVENTS))
    elif kind == "change":
        statement = statement.where(c.event.in_(CHANGE_EVENTS))
    if query.since is not None:
        statement = statement.where(c.at >= as_utc(query.since))
    if query.until is not None:
        statement = statement.where(c.at < as_utc(query.until))
    return statement


def audit_record(row: Any) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at=as_utc(row["at"]),
        trace_id=row["trace_id"],
        event=row["event"],
        subject=row["subject"],
        subject_issuer=row["subject_issuer"],
        client_id=row["client_id"],
        actors=list(row["actors"]),
        target=row["target"],
        action=row["action"],
        scopes_requested=(
            row["scopes_requested"].split() if row["scopes_requested"] is not None else None
        ),
        scopes_granted=row["scopes_granted"].split(),
        decision=row["decision"],
        reasons=list(row["reasons"]),
        outcome=row["outcome"],
        detail=row["detail"],
        latency_ms=row["latency_ms"],
        token_id=row["token_id"],
    )
