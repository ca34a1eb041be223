"""The last hour's traffic, minute by minute, from the audit log: how many
calls, how many of them refused, and the p95 latency of those made.

A *call* is the one record written for a delegated call, whatever its end:
``a2a.<operation>`` (``a2a.SendMessage``, ``a2a.GetTask``, ...: the outcome
the agents' handlers record, for the A2A door, an agent skill on `/mcp` or a
flow step), ``mcp`` (a tool, prompt or resource of an MCP server), and a
call refused before it was made, under its door's event: ``a2a``, ``mcp``,
``flow.step`` (`Delegations` audits those itself). What only follows a call
already counted (`FOLLOW_UPS`: ``a2a.run``, the end of a gateway-run task;
``a2a.retry``; ``a2a.reconcile``; ``a2a.approved``, the decision again for
a held call, which is counted when held and again when made) and what is
not a call (token exchange, an admin's change, a flow's own events) is not
counted. A *refusal* is such a record with decision ``deny`` (the policy, a
rate limit, a coordination rule, an unknown target). Latency is the record's
``latency_ms``: admission to the recorded outcome, the upstream included;
the p95 is of the calls allowed (a refusal's few microseconds say nothing
of how the upstreams are doing).

Everything is aggregated by the database, one row per minute, over the
`ix_audit_at` range of the hour (``since <= at < until``); nothing of a
record but its minute's figures leaves it. The p95 is the nearest-rank one (the value
at position ceil(0.95 n) of the minute's latencies, ascending) on both
databases, so both show the same figure:

* PostgreSQL: ``percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)``
  in the same GROUP BY as the counts: exact, the database's own sort.
* SQLite has no percentile function: ``cume_dist()`` over each minute's
  latencies, in the database, keeping the least at or past 0.95. The sort
  is bounded at about `P95_SAMPLE` rows: when the hour had more allowed
  calls, only every ``step``-th record (by id, ``step = ceil(allowed /
  P95_SAMPLE)``) is ranked -- an even sample across the hour -- and
  `Traffic.sampled_every` says so; a minute none of whose calls fell in the
  sample has no p95. Up to `P95_SAMPLE` allowed calls an hour (about three a
  second, sustained) the figure is exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Label,
    and_,
    case,
    cast,
    extract,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.storage.audit_tables import audit_events

CALL_EVENTS = ("a2a", "mcp", "flow.step")  # and a2a.<operation>: see `is_call`
FOLLOW_UPS = ("a2a.run", "a2a.retry", "a2a.reconcile", "a2a.approved")
MINUTES = 60
P95_SAMPLE = 10_000

_c = audit_events.c


@dataclass(frozen=True)
class Minute:
    start: datetime  # UTC, whole minute
    calls: int
    refusals: int
    p95_ms: float | None  # None: no call allowed (or none sampled) that minute


@dataclass(frozen=True)
class Traffic:
    """`MINUTES` minutes, oldest first; the last is the minute under way."""

    minutes: tuple[Minute, ...]
    sampled_every: int = 1  # SQLite's p95: every n-th allowed call ranked

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.minutes)

    @property
    def refusals(self) -> int:
        return sum(m.refusals for m in self.minutes)

    @property
    def last_p95_ms(self) -> float | None:
        """The most recent minute's p95 that there is."""
        return next((m.p95_ms for m in reversed(self.minutes) if m.p95_ms is not None), None)


async def last_hour(engine: AsyncEngine, now: datetime | None = None) -> Traffic:
    """The `MINUTES` minutes up to ``now`` (default: the clock), the current one included."""
    first = _minute_of(now or datetime.now(UTC)) - MINUTES + 1
    since = datetime.fromtimestamp(first * 60, UTC)
    hour = _calls_within(since, since + timedelta(minutes=MINUTES))
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            counts, step = await _sqlite_minutes(conn, hour)
        else:
            counts, step = await _postgres_minutes(conn, hour), 1
    minutes = tuple(
        Minute(since + timedelta(minutes=i), *counts.get(first + i, (0, 0, None)))
        for i in range(MINUTES)
    )
    return Traffic(minutes, step)


class RecentTraffic:
    """`last_hour`, read at most once every ``fresh_seconds`` (and by one
    caller at a time): the overview shows the hour, and reading it costs in
    proportion to the hour's calls (docs/performance.md, "Console pages"), so a
    busy gateway's admins, reloading, share one reading instead of each paying
    for it."""

    def __init__(self, engine: AsyncEngine, fresh_seconds: float = 5.0) -> None:
        self._engine = engine
        self._fresh = fresh_seconds
        self._read: tuple[float, Traffic] | None = None
        self._reading = asyncio.Lock()

    async def get(self, before: Callable[[], Awaitable[object]] | None = None) -> Traffic:
        """The hour as read within ``fresh_seconds``; ``before`` is awaited
        first when it is read anew (the writer's buffer flushed)."""
        async with self._reading:
            if self._read is not None and time.monotonic() - self._read[0] < self._fresh:
                return self._read[1]
            if before is not None:
                await before()
            traffic = await last_hour(self._engine)
            self._read = (time.monotonic(), traffic)
            return traffic


def _minute_of(at: datetime) -> int:
    return int(at.timestamp()) // 60


def is_call(event: str) -> bool:
    """Whether a record of ``event`` is a call (as `_calls_within` selects them)."""
    return event in CALL_EVENTS or (event.startswith("a2a.") and event not in FOLLOW_UPS)


def _calls_within(since: datetime, until: datetime) -> ColumnElement[bool]:
    operation = and_(_c.event.like("a2a.%"), _c.event.not_in(FOLLOW_UPS))
    return and_(_c.at >= since, _c.at < until, or_(_c.event.in_(CALL_EVENTS), operation))


_DENIED = func.sum(case((_c.decision == "deny", 1), else_=0))


async def _postgres_minutes(
    conn: AsyncConnection, hour: ColumnElement[bool]
) -> dict[int, tuple[int, int, float | None]]:
    minute = cast(func.floor(extract("epoch", _c.at) / 60), BigInteger).label("minute")
    p95 = (
        func.percentile_disc(0.95).within_group(_c.latency_ms.asc()).filter(_c.decision == "allow")
    )
    rows = await conn.execute(
        select(minute, func.count(), _DENIED, p95).where(hour).group_by(minute)
    )
    return {int(m): (int(n), int(d or 0), _ms(p)) for m, n, d, p in rows}


async def _sqlite_minutes(
    conn: AsyncConnection, hour: ColumnElement[bool]
) -> tuple[dict[int, tuple[int, int, float | None]], int]:
    minute = _sqlite_minute()
    rows = (
        await conn.execute(select(minute, func.count(), _DENIED).where(hour).group_by(minute))
    ).all()
    allowed = sum(int(n) - int(d or 0) for _, n, d in rows)
    step = max(1, -(-allowed // P95_SAMPLE))  # ceil
    p95 = await _sqlite_p95(conn, hour, step) if allowed else {}
    return {int(m): (int(n), int(d or 0), p95.get(int(m))) for m, n, d in rows}, step


async def _sqlite_p95(
    conn: AsyncConnection, hour: ColumnElement[bool], step: int
) -> dict[int, float]:
    """Each minute's nearest-rank p95 of (every ``step``-th) allowed call:
    the least latency whose ``cume_dist()`` reaches 0.95 -- what
    ``percentile_disc`` returns. One window, one sort, the minute computed once."""
    sample = and_(hour, _c.decision == "allow")
    if step > 1:
        sample = and_(sample, _c.id % step == 0)
    calls = select(_sqlite_minute(), _c.latency_ms).where(sample).subquery()
    spread = func.cume_dist().over(partition_by=calls.c.minute, order_by=calls.c.latency_ms)
    ranked = select(calls.c.minute, calls.c.latency_ms, spread.label("at_or_below")).subquery()
    rows = await conn.execute(
        select(ranked.c.minute, func.min(ranked.c.latency_ms))
        .where(ranked.c.at_or_below >= 0.95)
        .group_by(ranked.c.minute)
    )
    return {int(m): float(ms) for m, ms in rows}


def _sqlite_minute() -> Label[int]:
    # `at` is stored as UTC text there; strftime('%s') reads it as seconds since the epoch.
    return (cast(func.strftime("%s", _c.at), Integer) // 60).label("minute")


def _ms(value: Any) -> float | None:
    return None if value is None else float(value)
