"""A candidate policy replayed over the audit's recorded decisions, reading
and storing nothing else (`POST /policies/whatif`, `switchboard policy whatif`).

Each decision's record keeps who asked (subject, client, the actor chain),
what of whom (target, skill or tool, its kind), with which scopes (the
caller's, the ones asked for) and what was decided (`decided_on`, migration
0039). A page of records -- oldest first, after a cursor (`Cursor`), inside
a time window -- is read in one query; the targets' cards as registered now are
looked up once per page; then every record is decided again by the pure
`policies.whatif` in a worker thread, so a large page does not stall the
gateway's event loop. A page also stops at `PAGE_SECONDS`: the caller goes
on from its ``next_cursor``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.change_events import CHANGE_EVENTS
from gateway.storage.audit_tables import audit_events
from policies.policy import Target
from policies.rules import Policy
from policies.whatif import (
    APPROVED_CALL,
    GONE,
    NOT_DECIDED,
    UNREPLAYABLE_OUTCOMES,
    Recorded,
    Tally,
    decide_again,
    example_of,
    stateful_rules,
)
from registry.tables import as_utc

PAGE_SECONDS = 5.0  # a page answers within about this, however many records it was asked for
_CHUNK = 2_000  # records decided between two looks at the clock

# The target (agent, MCP server) by id, as registered now; None when it is not.
Targets = Callable[[str], Awaitable[Target | None]]

_COLUMNS = [
    audit_events.c[name]
    for name in (
        "id",
        "at",
        "trace_id",
        "subject",
        "client_id",
        "actors",
        "target",
        "action",
        "scopes_requested",
        "scopes_granted",
        "decision",
        "outcome",
        "decided_on",
    )
]


# Where a page ends: its last record's time and id. Pages go in time order,
# along the index on `at` (SQLite's holds the rowid, the id, after it): in id
# order, with the window's bounds on `at`, each page would read the whole
# window again. Ids are not in time order across writers anyway.
Cursor = tuple[datetime, int]


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    after: Cursor | None = None  # None: from the window's start
    limit: int = 10_000  # records read for one page


@dataclass
class Page:
    tally: Tally
    read: int  # records of the window read for this page
    next_cursor: Cursor | None  # None: the window is done
    total: int | None  # the window's records, counted on its first page only


def _in_window(window: Window) -> Any:
    c = audit_events.c
    return (
        c.event.not_in(CHANGE_EVENTS),
        c.at >= as_utc(window.since),
        c.at < as_utc(window.until),
    )


def _after(cursor: Cursor | None) -> Any:
    c = audit_events.c
    if cursor is None:
        return ()
    at, last = as_utc(cursor[0]), cursor[1]
    # `at >= ...` is what the index serves; the rest skips the few records
    # of that very moment already read.
    return (c.at >= at, or_(c.at > at, c.id > last))


def page_query(window: Window) -> Any:
    """The records of one page, oldest first."""
    c = audit_events.c
    return (
        select(*_COLUMNS)
        .where(*_in_window(window), *_after(window.after))
        .order_by(c.at, c.id)
        .limit(window.limit)
    )


async def replay_page(
    engine: AsyncEngine,
    policy: Policy,
    targets: Targets,
    max_depth: int,
    window: Window,
    *,
    each: bool = False,
) -> Page:
    """One page of ``window`` decided again under ``policy``."""
    async with engine.connect() as conn:
        rows = (await conn.execute(page_query(window))).mappings().all()
        total = None
        if window.after is None:
            counted = select(func.count()).select_from(audit_events).where(*_in_window(window))
            total = int((await conn.execute(counted)).scalar_one())
    found: dict[str, Target | None] = {}
    for target in {row["target"] for row in rows if row["decided_on"] is not None}:
        found[target] = await targets(target)
    tally = Tally()
    done = await asyncio.to_thread(
        _decide_all, policy, rows, found, max_depth, tally, each, time.monotonic() + PAGE_SECONDS
    )
    more = done < len(rows) or len(rows) == window.limit
    last = rows[done - 1] if more and done else None
    return Page(tally, done, (as_utc(last["at"]), last["id"]) if last else None, total)


def _decide_all(
    policy: Policy,
    rows: Sequence[Any],
    targets: dict[str, Target | None],
    max_depth: int,
    tally: Tally,
    each: bool,
    deadline: float,
) -> int:
    """Decide ``rows`` into ``tally`` until done or past ``deadline`` (at
    least one chunk); how many were decided."""
    for start in range(0, len(rows), _CHUNK):
        if start and time.monotonic() > deadline:
            return start
        for row in rows[start : start + _CHUNK]:
            _decide_one(policy, row, targets, max_depth, tally, each)
    return len(rows)


def _decide_one(
    policy: Policy,
    row: Any,
    targets: dict[str, Target | None],
    max_depth: int,
    tally: Tally,
    each: bool,
) -> None:
    facts = row["decided_on"]
    if facts is None or row["target"] is None:
        tally.skip(NOT_DECIDED, {"id": row["id"], "trace_id": row["trace_id"]})
        return
    record = recorded(row, facts)
    if record.approval and record.decision == "allow" and record.outcome != "approval_required":
        tally.skip(APPROVED_CALL, example_of(record))
        return
    why = UNREPLAYABLE_OUTCOMES.get(record.outcome)
    target = targets.get(record.target)
    if why is None and target is None:
        why = GONE
    if why is not None or target is None:
        tally.not_replayed(why or GONE, example_of(record))
        return
    after = decide_again(policy, record, target, max_depth)
    tally.replayed_one(record, after, stateful_rules(policy, record), each)


def recorded(row: Any, facts: dict[str, Any]) -> Recorded:
    requested = row["scopes_requested"]
    return Recorded(
        id=row["id"],
        at=as_utc(row["at"]).isoformat(),
        trace_id=row["trace_id"],
        subject=row["subject"],
        client_id=row["client_id"] or "",
        actors=tuple(row["actors"]),
        target=row["target"],
        action=row["action"],
        kind=facts.get("kind", "skill"),
        caller_scopes=frozenset(facts.get("scopes", ())),
        requested=frozenset(requested.split()) if requested is not None else None,
        decision=row["decision"],
        outcome=row["outcome"],
        granted=tuple(row["scopes_granted"].split()),
        approval=bool(facts.get("approval")),
    )
