"""What coordination rules add to a delegated call, in one run: the same call
with no rules (the pipeline skips them), with rules that do not name it (the
keys read and the plan made, no database), and with rules that do (a hold
checked and a budget unit taken: one transaction, nothing to give back), on
SQLite, PostgreSQL and Redis.

    python -m bench.coordination
    python -m bench.coordination --calls 4000 --postgres ''   # SQLite only

The load is one caller awaiting each call in turn (latency per call, which is
what a call pays); the customers cycle over 1,000 keys and the budget is
large enough never to be reached, so every call is allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fresh_db import afresh_database
from gateway.delegation.coordination import Coordination
from gateway.delegation.coordination_redis import RedisStore
from gateway.delegation.coordination_sql import SqlStore
from gateway.delegation.permits import Caller
from gateway.storage.db import create_engine, upgrade
from policies.coordination import CoordinationPolicy, entity_keys, plan

RULES = CoordinationPolicy.model_validate(
    {
        "entities": [{"entity": "customer", "agents": ["sales", "support"], "key": "customer_id"}],
        "rules": [
            {
                "name": "support-first",
                "kind": "hold",
                "entity": "customer",
                "opened_by": {"agents": ["support"], "skills": ["escalate"]},
                "closed_by": {"agents": ["support"], "skills": ["resolve"]},
                "blocks": {"agents": ["sales"]},
                "ttl": 86400,
            },
            {
                "name": "contact-cap",
                "kind": "budget",
                "entity": "customer",
                "calls": {"agents": ["sales"]},
                "limit": 1_000_000,
                "per": 86400,
            },
        ],
    }
)
NONE = CoordinationPolicy()
CALLER = Caller("alice", "bench", frozenset(), ("client",), "client")


class _Audit:
    async def record(self, event: Any) -> None:
        return None


async def _per_call(
    rules: CoordinationPolicy, agent: str, coordination: Coordination | None, calls: int
) -> float:
    """Median µs per call over 5 batches: what `Delegations._coordinate` does."""
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for i in range(calls // 5):
            if not rules:
                continue  # no rules: the pipeline skips them
            data = {"customer_id": f"C-{i % 1000}"}
            keys = entity_keys(rules, agent, "upsell", [data])
            asked = plan(rules, agent, "upsell", keys)
            if asked and coordination is not None:
                admitted = await coordination.take(asked, CALLER, agent, "upsell", "t")
                await coordination.finished(admitted, True)
        batches.append((time.perf_counter() - started) / (calls // 5) * 1e6)
    return statistics.median(batches)


async def _database(url: str, calls: int) -> float:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        store = SqlStore(engine)
        try:
            coordination = Coordination(store, _Audit())  # type: ignore[arg-type]
            return await _per_call(RULES, "sales", coordination, calls)
        finally:
            await store.aclose()
    finally:
        await engine.dispose()


async def _redis(url: str, calls: int) -> tuple[float, float]:
    """µs per call with the rules in Redis, and per bare PING (the floor: one
    round trip from this client, which a call's one script cannot go under)."""
    store = RedisStore(url)
    try:
        await store.redis.flushdb()
        pings = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(calls // 5):
                await store.redis.ping()
            pings.append((time.perf_counter() - started) / (calls // 5) * 1e6)
        coordination = Coordination(store, _Audit())  # type: ignore[arg-type]
        return await _per_call(RULES, "sales", coordination, calls), statistics.median(pings)
    finally:
        await store.redis.flushdb()
        await store.aclose()


async def _scratch_postgres(server: str, calls: int) -> float:
    """On a database of its own on ``server``, dropped afterwards."""
    async with afresh_database(server, "bench_coordination") as url:
        return await _database(url.render_as_string(hide_password=False), calls)


async def main(calls: int, postgres: str | None, redis: str | None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        sqlite = f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}"
        rows = [
            ("no rules", await _per_call(NONE, "sales", None, calls)),
            ("rules, not this call", await _per_call(RULES, "billing", None, calls)),
            ("rules apply: SQLite", await _database(sqlite, calls)),
        ]
        if postgres:
            rows.append(("rules apply: PostgreSQL", await _scratch_postgres(postgres, calls)))
        if redis:
            per_call, ping = await _redis(redis, calls)
            rows += [("rules apply: Redis", per_call), ("(a bare Redis PING)", ping)]
    load = os.getloadavg()[0]
    print(f"coordination rules: a hold and a budget per customer, {calls} calls, load {load:.2f}")
    print(f"{'case':26} {'µs/call':>9}")
    for name, micros in rows:
        print(f"{name:26} {micros:9.1f}")
    print("target: <= 300 µs added per call when rules apply; nothing when there are none")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument(
        "--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test", help="'' to skip"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="'' to skip")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.postgres or None, args.redis or None))
