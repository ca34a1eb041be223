"""Registry search over N registered cards: p50/p99 per query shape.

    python -m bench.registry_search                # 10,000 cards on SQLite
    python -m bench.registry_search --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench

Baseline, measured in the same run on the same store: a primary-key lookup
(`get`). docs/architecture.md target: registry search over 10,000 cards, p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from gateway.app import freeze_startup_heap
from gateway.storage import db
from registry.cards import parse_card
from registry.models import AgentQuery
from registry.signatures import SignatureCheck, SignatureStatus
from registry.store import NewAgent, SqlAgentStore

WORDS = [
    "inventory",
    "stock",
    "warehouse",
    "billing",
    "invoice",
    "refund",
    "crm",
    "customer",
    "lead",
    "quote",
    "shipping",
    "tracking",
    "payroll",
    "hr",
    "onboarding",
    "ticket",
    "support",
    "search",
    "summarize",
    "translate",
    "forecast",
    "pricing",
    "catalog",
    "order",
    "returns",
    "fraud",
    "risk",
    "compliance",
    "audit",
    "calendar",
    "email",
]
MODES = ["text/plain", "application/json", "image/png", "application/pdf", "text/csv"]
TARGET_P99_MS = 10.0


def synthetic_card(i: int, rng: random.Random) -> dict[str, Any]:
    skills = []
    for s in range(rng.randint(1, 5)):
        words = rng.sample(WORDS, 3)
        skills.append(
            {
                "id": f"{words[0]}-{words[1]}-{s}",
                "name": f"{words[0].title()} {words[1]}",
                "description": f"Handles {' and '.join(words)} requests for team {i % 97}.",
                "tags": rng.sample(WORDS, 2),
                "inputModes": rng.sample(MODES, 2),
            }
        )
    return {
        "name": f"Agent {i:05d} {rng.choice(WORDS)}",
        "description": f"Synthetic agent number {i} for {rng.choice(WORDS)} work.",
        "version": "1.0.0",
        "supportedInterfaces": [
            {
                "url": f"https://agent{i}.example.com/a2a",
                "protocolBinding": "JSONRPC",
                "protocolVersion": "1.0",
            }
        ],
        "capabilities": {"streaming": bool(i % 2)},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": rng.sample(MODES, 2),
        "skills": skills,
    }


async def populate(store: SqlAgentStore, count: int, rng: random.Random) -> float:
    unsigned = SignatureCheck(SignatureStatus.UNSIGNED, "")
    started = time.perf_counter()
    for i in range(count):
        parsed = parse_card(synthetic_card(i, rng))
        agent_id = f"agent-{i:05d}"
        await store.create(
            NewAgent(agent_id, f"urn:bench:{agent_id}", None, parsed, unsigned, None)
        )
    return time.perf_counter() - started


async def measure(call: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    for _ in range(min(20, repeat)):  # warm caches and the connection pool
        await call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(cards: int, repeat: int, database_url: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        engine = db.create_engine(url)
        await db.upgrade(engine)
        store = SqlAgentStore(engine)
        rng = random.Random(7)
        if await store.count() == 0:
            seconds = await populate(store, cards, rng)
            print(f"registered {cards} cards in {seconds:.1f} s ({cards / seconds:.0f}/s)")
        if engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk load in a live database.
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        total = await store.count()
        freeze_startup_heap()  # as the gateway does once it has started
        probe = rng

        shapes: dict[str, Callable[[], Awaitable[Any]]] = {
            "baseline: get by id": lambda: store.get(f"agent-{probe.randrange(total):05d}"),
            "first page (50)": lambda: store.search(AgentQuery()),
            "skill=": lambda: store.search(
                AgentQuery(skill=f"{probe.choice(WORDS)}-{probe.choice(WORDS)}-0")
            ),
            "tag=": lambda: store.search(AgentQuery(tag=probe.choice(WORDS))),
            "input_mode=": lambda: store.search(AgentQuery(input_mode=probe.choice(MODES))),
            "q=one word": lambda: store.search(AgentQuery(q=probe.choice(WORDS))),
            "q=two words": lambda: store.search(AgentQuery(q=" ".join(probe.sample(WORDS, 2)))),
            "q=no match": lambda: store.search(AgentQuery(q="zzzz-no-such-thing")),
            "tag= + q=": lambda: store.search(
                AgentQuery(tag=probe.choice(WORDS), q=probe.choice(WORDS))
            ),
        }
        results = {name: await measure(call, repeat) for name, call in shapes.items()}
        await engine.dispose()

    backend = url.split(":", 1)[0]
    baseline_p99 = percentile(results["baseline: get by id"], 99)
    print(f"\nregistry search, {total} cards, {backend}, {repeat} queries per shape\n")
    print(f"{'query':<22} {'p50 ms':>8} {'p99 ms':>8} {'p99/baseline':>13} {'target':>8}")
    failed = 0
    for name, samples in results.items():
        p50, p99 = statistics.median(samples), percentile(samples, 99)
        verdict = "" if name.startswith("baseline") else ("ok" if p99 <= TARGET_P99_MS else "MISS")
        failed += verdict == "MISS"
        print(f"{name:<22} {p50:>8.2f} {p99:>8.2f} {p99 / baseline_p99:>12.1f}x {verdict:>8}")
    print(
        f"\ntarget: p99 <= {TARGET_P99_MS:g} ms per search ({'met' if not failed else f'{failed} missed'})"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.cards, args.repeat, args.database_url)))
