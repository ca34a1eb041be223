"""A policy what-if over a large audit: every recorded decision replayed
under a candidate policy (`gateway.delegation.whatif`), on both databases.

    python -m bench.policy_whatif                        # 1,000,000 records, SQLite then PostgreSQL
    python -m bench.policy_whatif --records 100000 --only sqlite

A throwaway database per backend (the gateway's own schema, its migrations)
gets ``--records`` audit records of decisions, inserted in bulk (SQLite:
`executemany` in one transaction; PostgreSQL: `INSERT ... SELECT` from
`generate_series`), spread over the last days: 1,000 users, 100 agents with
two skills each, a tenth of the calls denied, one in 97 rate limited (not
replayable). Then the window is replayed page by page (10,000 records a
page, as the CLI asks) under a candidate that changes about half the
decisions, and, as the baseline in the same run, read page by page with the
same query and nothing decided. Printed: seconds for each, records a second,
and what the replay found (its totals are checked against the data);
"CPU here" is this process's (PostgreSQL's own is not in it).
The targets are resolved from an in-memory table, not the registry: one
lookup per target per page in the gateway, 100 per page here at most.
docs/performance.md, "Policy what-if".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.fresh_db import fresh_database
from gateway.delegation.whatif import Window, page_query, replay_page
from gateway.storage import db
from policies.policy import Target
from policies.policy_file import parse_policy
from policies.whatif import Tally
from registry.tables import as_utc

POSTGRES = os.environ.get("SWITCHBOARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PAGE = 10_000
AGENTS = 100
# Under the policy of the recording: writing needs crm:write. The candidate
# closes agent-7, holds every write for approval and passes on crm:read only.
CANDIDATE = """\
agents:
  "*":
    grant: [crm:read]
    skills:
      write:
        require: [crm:write]
        approval: true
  agent-7:
    allow: false
"""
TARGETS = {
    f"agent-{i}": Target(f"agent-{i}", skills=frozenset({"read", "write"})) for i in range(AGENTS)
}

# One statement: the rows made by the server, oldest first. User g % 1000
# holds crm:write when it is a multiple of 4; skill `write` for g % 3 == 0.
PG_AUDIT = """
INSERT INTO audit_events (at, trace_id, event, subject, subject_issuer, client_id, actors,
  target, action, scopes_requested, scopes_granted, decision, reasons, outcome, detail,
  latency_ms, token_id, decided_on)
SELECT now() - ((:n - g) * interval '500 milliseconds'), md5(g::text), 'a2a',
  'user-' || (g % 1000), 'https://issuer.example', 'client', '["client"]'::json,
  'agent-' || (g % 100), CASE WHEN g % 3 = 0 THEN 'write' ELSE 'read' END, NULL,
  CASE WHEN g % 97 = 0 OR (g % 3 = 0 AND g % 1000 % 4 <> 0) THEN ''
       WHEN g % 1000 % 4 = 0 THEN 'crm:read crm:write' ELSE 'crm:read' END,
  CASE WHEN g % 97 = 0 OR (g % 3 = 0 AND g % 1000 % 4 <> 0) THEN 'deny' ELSE 'allow' END,
  '[]'::json,
  CASE WHEN g % 97 = 0 THEN 'rate_limited'
       WHEN g % 3 = 0 AND g % 1000 % 4 <> 0 THEN 'denied' ELSE 'ok' END,
  NULL, 1.5, NULL,
  json_build_object('scopes', CASE WHEN g % 1000 % 4 = 0
      THEN '["crm:read", "crm:write"]'::json ELSE '["crm:read"]'::json END,
    'kind', 'skill', 'approval', false)
FROM generate_series(1, :n) AS g
"""


def sqlite_row(g: int, count: int, now: datetime) -> tuple[Any, ...]:
    """The row `PG_AUDIT` makes for ``g``."""
    writer = g % 1000 % 4 == 0
    write = g % 3 == 0
    limited = g % 97 == 0
    denied = write and not writer
    at = now - timedelta(milliseconds=500 * (count - g))
    granted = "" if limited or denied else ("crm:read crm:write" if writer else "crm:read")
    scopes = ["crm:read", "crm:write"] if writer else ["crm:read"]
    return (
        at.strftime("%Y-%m-%d %H:%M:%S.%f"),
        f"{g:032x}",
        "a2a",
        f"user-{g % 1000}",
        "https://issuer.example",
        "client",
        '["client"]',
        f"agent-{g % AGENTS}",
        "write" if write else "read",
        None,
        granted,
        "deny" if limited or denied else "allow",
        "[]",
        "rate_limited" if limited else ("denied" if denied else "ok"),
        None,
        1.5,
        None,
        json.dumps({"scopes": scopes, "kind": "skill", "approval": False}),
    )


def sqlite_fill(path: str, count: int) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO audit_events (at, trace_id, event, subject, subject_issuer, "
                "client_id, actors, target, action, scopes_requested, scopes_granted, decision, "
                "reasons, outcome, detail, latency_ms, token_id, decided_on) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sqlite_row(g, count, now) for g in range(1, count + 1)),
            )
    finally:
        conn.close()


async def fill(url: str, count: int) -> float:
    engine = db.create_engine(url)
    await db.upgrade(engine)
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text(PG_AUDIT), {"n": count})
            await conn.execute(text("ANALYZE"))
    await engine.dispose()
    if engine.dialect.name == "sqlite":
        sqlite_fill(url.split("///", 1)[1], count)
    return time.perf_counter() - started


async def _target(target_id: str) -> Target | None:
    return TARGETS.get(target_id)


async def measure(url: str) -> dict[str, Any]:
    engine = db.create_engine(url)
    policy = parse_policy(CANDIDATE)
    until = datetime.now(UTC) + timedelta(seconds=1)
    window = Window(until - timedelta(days=7), until, None, PAGE)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        total = Tally()
        pages, counted = 0, None
        while True:
            page = await replay_page(engine, policy, _target, 4, window)
            pages += 1
            counted = page.total if counted is None else counted
            _add(total, page.tally)
            if page.next_cursor is None:
                break
            window = Window(window.since, window.until, page.next_cursor, PAGE)
        replay, replay_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        read = await _read_only(engine, window.since, until)
        baseline, baseline_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await engine.dispose()
    return {
        "replay": replay,
        "replay_cpu": replay_cpu,
        "baseline": baseline,
        "baseline_cpu": baseline_cpu,
        "pages": pages,
        "total": counted,
        "read": read,
        "tally": total,
    }


def _add(total: Tally, page: Tally) -> None:
    total.decisions += page.decisions
    total.replayed += page.replayed
    for key, group in page.changes.items():
        total.changes.setdefault(key, type(group)()).count += group.count
    for why, group in page.unreplayable.items():
        total.unreplayable.setdefault(why, type(group)()).count += group.count


async def _read_only(engine: Any, since: datetime, until: datetime) -> int:
    """The baseline: the same pages read with the same query, nothing decided."""
    window, read = Window(since, until, None, PAGE), 0
    while True:
        async with engine.connect() as conn:
            rows = (await conn.execute(page_query(window))).mappings().all()
        read += len(rows)
        if len(rows) < PAGE:
            return read
        last = rows[-1]
        window = Window(since, until, (as_utc(last["at"]), last["id"]), PAGE)


def expected(count: int) -> tuple[int, int]:
    """(decisions replayed, rate limited) in the data `fill` made."""
    limited = count // 97
    return count - limited, limited


def run(backend: str, url: str, count: int) -> None:
    filled = asyncio.run(fill(url, count))
    print(f"{backend}: {count:,} audit records inserted in {filled:.1f} s")
    found = asyncio.run(measure(url))
    tally: Tally = found["tally"]
    replayed, limited = expected(count)
    assert found["total"] == count == found["read"], found
    assert (tally.replayed, tally.decisions - tally.replayed) == (replayed, limited), tally
    rate = count / found["replay"]
    print(
        f"  replay:   {found['replay']:7.1f} s, {found['replay_cpu']:.1f} s CPU here "
        f"({rate:,.0f} records/s, {found['pages']} pages of {PAGE:,}); {tally.changed:,} of "
        f"{tally.decisions:,} decisions would change, {limited:,} not replayable"
    )
    print(
        f"  baseline: {found['baseline']:7.1f} s, {found['baseline_cpu']:.1f} s CPU here "
        f"(the same pages read, nothing decided); replay / baseline = "
        f"{found['replay'] / found['baseline']:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-whatif-") as tmp:
        if args.only in (None, "sqlite"):
            run("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'whatif.db'}", args.records)
        if args.only in (None, "postgresql"):
            with fresh_database(POSTGRES, "switchboard_bench_whatif") as fresh:
                url = fresh.render_as_string(hide_password=False)
                run("postgresql", url, args.records)


if __name__ == "__main__":
    main()
