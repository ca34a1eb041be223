"""`POST /policies/whatif` (admin): a candidate policy replayed over the
decisions the audit recorded (`gateway.delegation.whatif`), before it is
saved. The document is checked exactly as a save checks it (422 naming each
problem's line); nothing is stored and the policy in force is unchanged.

A window (``since`` .. ``until``, default the last 7 days) is answered a
page at a time: at most ``limit`` records, and about five seconds of work,
per request; ``next_cursor`` says where the next page starts (pass it as
``cursor`` with the same window), null once the window is done. The first
page also counts the window's records (``total``), for a progress bar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from gateway.api.policy_edits import PolicyText, checked_policy
from gateway.api.state import AppState, state_of
from gateway.delegation.whatif import Cursor, Page, Targets, Window, replay_page
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem
from gateway.http.queries import IsoDatetime
from policies.policy import Target
from policies.policy_file import document_digest
from policies.whatif import Group, Tally
from registry.tables import as_utc

router = APIRouter(prefix="/policies", tags=["policies"])
DEFAULT_WINDOW = timedelta(days=7)
MAX_PAGE = 50_000
_MAX_ID = 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MICROS = (datetime(9999, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)


class WhatIfRequest(PolicyText):
    since: IsoDatetime | None = Field(
        default=None, description="the window's start (default: 7 days before ``until``)"
    )
    until: IsoDatetime | None = Field(
        default=None, description="the window's end, excluded (default: now)"
    )
    cursor: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,19}\.[0-9]{1,19}$",
        description="the previous page's ``next_cursor`` (same window)",
    )
    # Strict: JSON's true is not a count, nor 1 a yes (a schema's integer and boolean).
    limit: int = Field(
        default=10_000, ge=1, le=MAX_PAGE, strict=True, description="records read per page"
    )
    each: bool = Field(
        default=False,
        strict=True,
        description="also list every decision replayed, with its before and after",
    )


@router.post("/whatif", summary="Replay recorded decisions under a candidate policy (read-only)")
async def whatif(request: Request, body: WhatIfRequest, _admin: AdminPrincipal) -> dict[str, Any]:
    state = state_of(request)
    delegations = state.delegations
    candidate = await checked_policy(delegations.policy, body.document)
    until = as_utc(body.until) if body.until else datetime.now(UTC)
    # An until within the window of the earliest time there is (year 1): from
    # the earliest, not an OverflowError (500).
    earliest = datetime.min.replace(tzinfo=UTC)
    start = until - DEFAULT_WINDOW if until - earliest > DEFAULT_WINDOW else earliest
    since = as_utc(body.since) if body.since else start
    if since >= until:
        raise Problem(422, "invalid-window", "Empty window", "since must be before until")
    # The decisions of the calls just made are in the window too.
    await delegations.audit.flush()
    window = Window(since, until, _cursor(body.cursor), body.limit)
    page = await replay_page(
        state.engine, candidate, _targets(state), delegations.max_depth, window, each=body.each
    )
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "digest": document_digest(body.document),
        "in_force_digest": delegations.policy.document.digest,
        **page_dict(page, since, each=body.each),
    }


def _targets(state: AppState) -> Targets:
    async def target(target_id: str) -> Target | None:
        # As registered now (not the calls' moment-long cache).
        found = await state.delegations.agents.get_with_card(target_id)
        if found is not None:
            return Target.from_card(target_id, found[1])
        # An MCP server is a target of the same decision, with no card.
        if await state.mcp.store.config(target_id) is not None:
            return Target(target_id)
        return None

    return target


def _cursor(value: str | None) -> Cursor | None:
    """``<microseconds since 1970>.<record id>``: where the page before ended."""
    if value is None:
        return None
    micros, record = (int(part) for part in value.split("."))
    if micros > _MAX_MICROS or record > _MAX_ID:
        raise Problem(422, "invalid-cursor", "Invalid cursor", "not a cursor this gateway gave")
    return EPOCH + timedelta(microseconds=micros), record


def cursor_text(cursor: Cursor | None) -> str | None:
    if cursor is None:
        return None
    at, record = cursor
    return f"{(at - EPOCH) // timedelta(microseconds=1)}.{record}"


def page_dict(page: Page, since: datetime, *, each: bool = False) -> dict[str, Any]:
    tally = page.tally
    shown = tally_dict(tally)
    if each:
        shown["each"] = tally.each
    shown.update(
        read=page.read,
        total=page.total,
        next_cursor=cursor_text(page.next_cursor),
        summary=summary(tally, since, page.next_cursor is not None),
    )
    return shown


def tally_dict(tally: Tally) -> dict[str, Any]:
    changes = sorted(tally.changes.items(), key=lambda kv: (-kv[1].count, str(kv[0])))
    return {
        "decisions": tally.decisions,
        "replayed": tally.replayed,
        "changed": tally.changed,
        "changes": [
            {
                "principal": subject,
                "target": target,
                "kind": kind,
                "action": action,
                "before": before.as_dict(),
                "after": after.as_dict(),
                "count": group.count,
                "examples": group.examples,
            }
            for (subject, target, kind, action, before, after), group in changes
        ],
        "unreplayable": _named(tally.unreplayable),
        "skipped": _named(tally.skipped),
        "subject_to": [{"rule": k, "count": v} for k, v in sorted(tally.subject_to.items())],
    }


def _named(groups: dict[str, Group]) -> list[dict[str, Any]]:
    return [
        {"reason": reason, "count": group.count, "examples": group.examples}
        for reason, group in sorted(groups.items())
    ]


def summary(tally: Tally, since: datetime, partial: bool) -> str:
    said = f"of the {tally.decisions:,} decisions since {since.isoformat()}"
    if partial:
        said += " (this page)"
    said += f", {tally.changed:,} would change"
    if tally.unreplayable:
        unknown = sum(g.count for g in tally.unreplayable.values())
        said += f"; {unknown:,} could not be replayed"
    return said
