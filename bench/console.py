"""The console's pages, rendered by a real gateway process, over a big database.

    python -m bench.console                  # SQLite, then PostgreSQL on 127.0.0.1:5432
    python -m bench.console --only sqlite    # or --only postgresql

A throwaway database per backend gets 10,000 agents, 1,000,000 audit records
and 2,000 approvals (200 pending), inserted directly in bulk (SQLite:
`executemany` in one transaction; PostgreSQL: `INSERT ... SELECT` from
`generate_series`), on the gateway's own schema (its migrations). PostgreSQL's
database is ``switchboard_bench_console_<random>``, dropped afterwards. Then
`switchboard serve --dev` on it, a dev login (a session cookie, as a browser
has), and each page fetched over HTTP one at a time: p50 and p95 of the whole
round trip, so the figure includes HTTP and the session check, not only
rendering. docs/performance.md, "Console pages": target p95 <= 50 ms a page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

from bench import ports
from bench.fresh_db import fresh_database
from bench.registry_search import WORDS, synthetic_card
from gateway.demo.process import GatewayProcess
from gateway.storage import db
from gateway.storage.tables import approvals
from registry.agent_rows import card_columns  # the rows `SqlAgentStore.create` writes
from registry.agent_search import card_facets
from registry.cards import parse_card
from registry.signatures import SignatureCheck, SignatureStatus
from registry.tables import agent_card_versions, agent_facets, agents

POSTGRES = os.environ.get("SWITCHBOARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
TARGET_P95_MS = 50.0
USERS = 1000
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def pages(rng: random.Random) -> dict[str, Any]:
    """Each measured page: a path, or a function giving the next path."""
    return {
        "overview /ui": "/ui",
        "agents ?q=word": lambda: f"/ui/agents?q={rng.choice(WORDS)}",
        "audit, first page": "/ui/audit",
        "audit ?user=": lambda: f"/ui/audit?user=user-{rng.randrange(USERS)}",
        "audit ?decision=deny": "/ui/audit?decision=deny",
        "audit, older page": None,  # the cursor of the first page's "Older" link
        "approvals": "/ui/approvals",
        "approvals ?state=pending": "/ui/approvals?state=pending",
        "MCP servers": "/ui/mcp",
        "flows": "/ui/flows",
        "holds": "/ui/holds",
    }


# --- Filling the database ---------------------------------------------------------


async def fill(url: str, agent_count: int, audit_count: int) -> dict[str, float]:
    """The schema, then the rows; seconds each part took."""
    took: dict[str, float] = {}
    engine = db.create_engine(url)
    started = time.perf_counter()
    await db.upgrade(engine)
    took["schema"] = time.perf_counter() - started
    started = time.perf_counter()
    rows, versions, facets = agent_rows(agent_count)
    async with engine.begin() as conn:
        for table, batch in (
            (agents, rows),
            (agent_card_versions, versions),
            (agent_facets, facets),
        ):
            for at in range(0, len(batch), 2000):
                await conn.execute(insert(table), batch[at : at + 2000])
        await conn.execute(insert(approvals), approval_rows(2000, 200))
    took["agents"] = time.perf_counter() - started
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text(PG_AUDIT), {"n": audit_count})
            await conn.execute(text("ANALYZE"))  # what autovacuum does soon after a bulk load
    await engine.dispose()
    if engine.dialect.name == "sqlite":
        sqlite_audit(url.split("///", 1)[1], audit_count)
    took["audit"] = time.perf_counter() - started
    return took


def agent_rows(count: int) -> tuple[list[dict[str, Any]], ...]:
    rng = random.Random(7)
    unsigned = SignatureCheck(SignatureStatus.UNSIGNED, "")
    now = datetime.now(UTC)
    rows, versions, facets = [], [], []
    for i in range(count):
        parsed = parse_card(synthetic_card(i, rng))
        agent_id = f"agent-{i:05d}"
        rows.append(
            {
                "id": agent_id,
                "card_url": None,
                "resource": f"urn:bench:{agent_id}",
                "timeout_seconds": None,
                "skill_contracts": None,
                "pinned_keys": None,
                "revision": 1,
                # Checked just now: the health checker leaves them for an hour.
                "health_status": "healthy",
                "health_failures": 0,
                "health_successes": 1,
                "health_checked_at": now,
                "registered_at": now,
                "updated_at": now,
                **card_columns(parsed, unsigned),
            }
        )
        versions.append(
            {
                "agent_id": agent_id,
                "revision": 1,
                "card": parsed.normalized,
                "original_card": parsed.original,
                "card_digest": parsed.digest,
                "card_version": parsed.card.version,
                "signature_status": unsigned.status.value,
                "created_at": now,
            }
        )
        facets += [
            {"agent_id": agent_id, "kind": k, "value": v} for k, v in sorted(card_facets(parsed))
        ]
    return rows, versions, facets


def approval_rows(count: int, pending: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        user = f"user-{i % USERS}"
        state = "pending" if i < pending else ("approved" if i % 3 else "rejected")
        rows.append(
            {
                "id": f"apr_{i:032x}",
                "state": state,
                "kind": "a2a",
                "target": f"agent-{i % 10_000:05d}",
                "action_kind": "skill",
                "action": "work",
                "tool": None,
                "owner_subject": user,
                "owner_issuer": "https://issuer.example",
                "caller": {
                    "subject": user,
                    "issuer": "https://issuer.example",
                    "scopes": ["crm:read"],
                    "actors": ["client"],
                    "client_id": "client",
                    "not_after": None,
                },
                "trace_id": secrets.token_hex(16),
                "request": {"message": {"parts": [{"text": f"refund order {i}"}]}},
                "reasons": ["the policy asks an admin"],
                "task_id": None,
                "context_id": None,
                "created_at": now - timedelta(minutes=count - i),
                "decided_at": None if state == "pending" else now,
                "decided_by": None if state == "pending" else "admin",
            }
        )
    return rows


# One statement: the rows are made by the server, newest last (ids ascend with time).
PG_AUDIT = """
INSERT INTO audit_events (at, trace_id, event, subject, subject_issuer, client_id, actors,
  target, action, scopes_requested, scopes_granted, decision, reasons, outcome, detail,
  latency_ms, token_id)
SELECT now() - ((:n - g) * interval '2 seconds'), md5(g::text), 'a2a',
  'user-' || (g % 1000), 'https://issuer.example', 'client', '["client"]'::json,
  'agent-' || lpad((g % 10000)::text, 5, '0'), 'work', 'crm:read',
  CASE WHEN g % 10 = 0 THEN '' ELSE 'crm:read' END,
  CASE WHEN g % 10 = 0 THEN 'deny' ELSE 'allow' END,
  CASE WHEN g % 10 = 0 THEN '["missing scope crm:read"]'::json ELSE '[]'::json END,
  CASE WHEN g % 10 = 0 THEN 'denied' ELSE 'ok' END, NULL, (g % 50) + 0.5, md5((g + 1)::text)
FROM generate_series(1, :n) AS g
"""


def sqlite_audit(path: str, count: int) -> None:
    """The same rows as `PG_AUDIT`, by `executemany` in one transaction."""
    now = datetime.now(UTC).replace(tzinfo=None)

    def rows() -> Any:
        for g in range(1, count + 1):
            deny = g % 10 == 0
            at = now - timedelta(seconds=2 * (count - g))
            yield (
                at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                f"{g:032x}",
                "a2a",
                f"user-{g % USERS}",
                "https://issuer.example",
                "client",
                '["client"]',
                f"agent-{g % 10_000:05d}",
                "work",
                "crm:read",
                "" if deny else "crm:read",
                "deny" if deny else "allow",
                json.dumps(["missing scope crm:read"] if deny else []),
                "denied" if deny else "ok",
                None,
                g % 50 + 0.5,
                f"{g + 1:032x}",
            )

    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO audit_events (at, trace_id, event, subject, subject_issuer, "
                "client_id, actors, target, action, scopes_requested, scopes_granted, decision, "
                "reasons, outcome, detail, latency_ms, token_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(),
            )
    finally:
        conn.close()


# --- Measuring ----------------------------------------------------------------------


def login(client: httpx.Client) -> None:
    """The dev login, as a browser does it: the session cookie stays in ``client``."""
    form = client.get("/ui/login")
    token = CSRF.search(form.text)
    assert token is not None, form.text[:500]
    data = {"csrf": token.group(1), "subject": "admin", "scopes": "switchboard:admin"}
    answer = client.post("/ui/login/dev", data=data)
    assert answer.status_code == 303, answer.text[:500]


def measure(client: httpx.Client, repeat: int, rng: random.Random) -> dict[str, list[float]]:
    first = client.get("/ui/audit").text
    older = re.search(r'id="next" href="([^"]+)"', first)
    assert older is not None, "the audit page has no next page"
    shapes = pages(rng)
    shapes["audit, older page"] = older.group(1).replace("&amp;", "&")
    results: dict[str, list[float]] = {}
    for name, path in shapes.items():
        samples = []
        for i in range(repeat + 20):  # the first 20 warm up
            target = path() if callable(path) else path
            started = time.perf_counter()
            answer = client.get(target)
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200, (target, answer.status_code, answer.text[:300])
            if i >= 20:
                samples.append(elapsed)
        results[name] = samples
    return results


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(backend: str, results: dict[str, list[float]], repeat: int) -> int:
    print(f"\nconsole pages, {backend}: {repeat} requests a page, one at a time\n")
    print(f"{'page':<26} {'p50 ms':>8} {'p95 ms':>8} {'target':>8}")
    missed = 0
    for name, samples in results.items():
        p50, p95 = statistics.median(samples), percentile(samples, 95)
        verdict = "ok" if p95 <= TARGET_P95_MS else "MISS"
        missed += verdict == "MISS"
        print(f"{name:<26} {p50:>8.1f} {p95:>8.1f} {verdict:>8}")
    return missed


def run_backend(
    backend: str, url: str, root: Path, agent_count: int, audit_count: int, repeat: int
) -> int:
    took = asyncio.run(fill(url, agent_count, audit_count))
    print(
        f"{backend}: schema {took['schema']:.1f} s, {agent_count} agents and 2000 approvals "
        f"{took['agents']:.1f} s, {audit_count} audit records {took['audit']:.1f} s"
    )
    gateway = GatewayProcess(root / f"gw-{backend}", database_url=url, port=ports.from_range())
    gateway.start(timeout=120)
    try:
        with httpx.Client(base_url=gateway.url, timeout=60) as client:
            login(client)
            results = measure(client, repeat, random.Random(11))
    finally:
        gateway.stop()
    return report(backend, results, repeat)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    ports.add_argument(parser)
    args = parser.parse_args()
    missed = 0
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-console-") as tmp:
        root = Path(tmp)
        if args.only in (None, "sqlite"):
            url = f"sqlite+aiosqlite:///{root / 'console.db'}"
            missed += run_backend("sqlite", url, root, args.agents, args.audit, args.repeat)
        if args.only in (None, "postgresql"):
            with fresh_database(POSTGRES, "switchboard_bench_console") as fresh:
                url = fresh.render_as_string(hide_password=False)
                missed += run_backend("postgresql", url, root, args.agents, args.audit, args.repeat)
    print(
        f"\ntarget: p95 <= {TARGET_P95_MS:g} ms a page ({'met' if not missed else f'{missed} missed'})"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
