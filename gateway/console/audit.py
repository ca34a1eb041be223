"""`/ui/audit` (admins): the decision log, and one request's delegation tree.

The log is read through `GET /audit`'s own function: the same filters (user,
agent, decision, time) and the same opaque cursor, newest first, so a page
costs one indexed range read however long the log is. The trace page reads
every record of one trace id and draws the hops as a tree: a hop is the
actors that acted plus the target (the path an `act` chain records), so the
tree is the delegation itself, with the scopes asked and granted, the
reasons and the latency at each hop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError

from gateway.api import audit as audit_api
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    current_user,
    page,
    require_admin,
)
from gateway.delegation.audit_reads import AuditQuery, AuditRecord

router = APIRouter(prefix=PREFIX + "/audit", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
TRACE_LIMIT = 1000


@dataclass
class Hop:
    name: str
    records: list[AuditRecord] = field(default_factory=list)
    children: dict[str, Hop] = field(default_factory=dict)


def delegation_tree(records: Iterable[AuditRecord]) -> Hop:
    """The hops of one trace under a root, each record (oldest first) at its hop."""
    root = Hop("")
    for record in sorted(records, key=lambda r: r.id):
        node = root
        for name in (*record.actors[1:], record.target or "?"):
            node = node.children.setdefault(name, Hop(name))
        node.records.append(record)
    return root


@router.get("")
async def audit_page(
    request: Request,
    user_filter: Annotated[str | None, Query(alias="user")] = None,
    agent: str | None = None,
    decision: str | None = None,
    kind: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> Response:
    user = await current_user(request)
    await require_admin(request, user)
    try:
        query = AuditQuery(
            user=user_filter or None,
            agent=agent or None,
            decision=_decision(decision),
            kind=kind or None,
            since=_time(since),
            until=_time(until),
            cursor=cursor or None,
            limit=PAGE,
        )
    except (ValidationError, ValueError):
        raise ConsoleError(
            422, "The filter cannot be read", "times are ISO 8601, e.g. 2026-11-24T09:00"
        ) from None
    found = await audit_api.page(request, query)
    return page(
        request,
        user,
        "audit.html",
        records=found.items,
        next_cursor=found.next_cursor,
        filters={
            "user": user_filter or "",
            "agent": agent or "",
            "decision": decision or "",
            "kind": kind or "",
            "since": since or "",
            "until": until or "",
        },
    )


@router.get("/trace/{trace_id}")
async def trace_page(
    request: Request, trace_id: Annotated[str, Path(pattern="^[0-9a-f]{32}$")]
) -> Response:
    user = await current_user(request)
    await require_admin(request, user)
    found = await audit_api.page(request, AuditQuery(trace=trace_id, limit=TRACE_LIMIT))
    if not found.items:
        raise ConsoleError(404, "Not found", f"no audit record of trace {trace_id}")
    users = sorted({f"{r.subject} ({r.subject_issuer})" for r in found.items})
    return page(
        request,
        user,
        "trace.html",
        trace_id=trace_id,
        tree=delegation_tree(found.items),
        users=users,
        truncated=found.next_cursor is not None,
    )


def _decision(value: str | None) -> Literal["allow", "deny"] | None:
    if not value:
        return None
    if value not in ("allow", "deny"):
        raise ValueError(value)
    return value  # type: ignore[return-value]


def _time(value: str | None) -> datetime | None:
    """ISO 8601 (what a `datetime-local` field sends); without an offset, UTC."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
