"""Tool search (`switchboard__search_tools`) over the labelled catalog of
`bench.tool_catalog`: how often the right tool is in the top 5, and what a
search costs at 10,000 tools.

    python -m bench.tool_search                 # SQLite
    python -m bench.tool_search --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench

Quality: recall@5 and nDCG@5 of the search (one right tool per query),
against listing all tools -- which always holds the right tool, at the cost
of every tool's definition in the client's context (the bytes are shown),
and whose first five, what a client reading only a page's start would see,
are shown too. Speed: p50/p99 of `ToolSearch.search` (the index query and
the caller's filter) with the catalog grown to ``--tools`` by numbered copies
of its servers, for a caller who may call every tool and for one who may
call 300; baseline in the same run on the same table: a primary-key read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import mcp_types as types
from sqlalchemy import select

from bench.registry_search import measure, percentile
from bench.tool_catalog import QUERIES, tools
from gateway.mcp.tool_search import ToolSearch, found_result
from gateway.storage import db
from registry.tables import tool_docs
from registry.tool_index import SqlToolIndex, ToolDocument, document


def grown(count: int) -> list[dict[str, Any]]:
    """The catalog, then numbered copies of its servers (`crm2__find_contact`)
    until ``count`` tools: a company with many instances of the same kinds."""
    base = tools()
    out = list(base)
    copy = 2
    while len(out) < count:
        for tool in base:
            server, _, name = tool["name"].partition("__")
            out.append({**tool, "name": f"{server}{copy}__{name}"})
            if len(out) == count:
                break
        copy += 1
    return out


def documents(defs: Sequence[dict[str, Any]]) -> list[ToolDocument]:
    return [document(d["name"], None, d["description"], d["inputSchema"]) for d in defs]


def as_tools(defs: Sequence[dict[str, Any]]) -> list[types.Tool]:
    return [types.Tool.model_validate(d) for d in defs]


def ranked_quality(rankings: list[tuple[list[str], str]]) -> tuple[float, float]:
    """recall@5 and nDCG@5 with one relevant tool per query."""
    hits, gains = 0, 0.0
    for names, right in rankings:
        top = names[:5]
        if right in top:
            hits += 1
            gains += 1 / math.log2(top.index(right) + 2)
    return hits / len(rankings), gains / len(rankings)


async def quality(search: ToolSearch, offered: list[types.Tool]) -> None:
    rankings = [
        ([t.name for t in await search.search(query, offered, 5)], right)
        for query, right in QUERIES
    ]
    recall, ndcg = ranked_quality(rankings)
    listed = [([t.name for t in offered], right) for _, right in QUERIES]
    list_recall, list_ndcg = ranked_quality(listed)
    all_bytes = len(json.dumps([t.model_dump(by_alias=True, exclude_none=True) for t in offered]))
    answers = [
        len(json.dumps(found_result(await search.search(q, offered, 5)).structured_content))
        for q, _ in QUERIES
    ]
    print(f"catalog: {len(offered)} tools, {len(QUERIES)} labelled queries")
    print(f"{'':<34}{'recall@5':>9}{'nDCG@5':>9}{'bytes':>9}")
    print(
        f"{'search_tools (limit 5)':<34}{recall:>9.3f}{ndcg:>9.3f}{sum(answers) // len(answers):>9}"
    )
    print(f"{'tools/list, all of it':<34}{1.0:>9.3f}{'-':>9}{all_bytes:>9}")
    print(f"{'tools/list, its first five':<34}{list_recall:>9.3f}{list_ndcg:>9.3f}{'-':>9}")
    misses = [
        (q, r) for (names, r), (q, _) in zip(rankings, QUERIES, strict=True) if r not in names
    ]
    for query, right in misses:
        print(f"  missed: {query!r} -> {right}")


async def main(count: int, repeat: int, database_url: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        engine = db.create_engine(url)
        await db.upgrade(engine)
        index = SqlToolIndex(engine)

        def search_over(defs: list[dict[str, Any]]) -> ToolSearch:
            key = (object(),)
            docs = documents(defs)

            async def catalog() -> Any:
                return key, lambda: docs

            return ToolSearch(index, catalog)

        base = tools()
        await quality(search_over(base), as_tools(base))

        everything = grown(count)
        search = search_over(everything)
        started = time.perf_counter()
        await search.search(
            "warm up", as_tools(everything[:1]), 1
        )  # brings the index in step: count documents
        print(f"\nindexed {len(everything)} tools in {time.perf_counter() - started:.1f} s")
        offered_all = as_tools(everything)
        rng = random.Random(5)
        offered_some = rng.sample(offered_all, 300)
        queries = [q for q, _ in QUERIES]
        names = [d["name"] for d in everything]

        async def by_id() -> None:
            async with engine.connect() as conn:
                await conn.execute(
                    select(tool_docs.c.digest).where(tool_docs.c.name == rng.choice(names))
                )

        shapes: dict[str, Callable[[], Awaitable[Any]]] = {
            "baseline: read one by name": by_id,
            f"search, caller sees all {count}": lambda: search.search(
                rng.choice(queries), offered_all, 5
            ),
            "search, caller sees 300": lambda: search.search(rng.choice(queries), offered_some, 5),
        }
        results = {name: await measure(call, repeat) for name, call in shapes.items()}
        base_p50 = percentile(results["baseline: read one by name"], 50)
        print(f"{'':<36}{'p50 ms':>8}{'p99 ms':>8}{'x base':>8}")
        for name, samples in results.items():
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            print(f"{name:<36}{p50:>8.2f}{p99:>8.2f}{p50 / base_p50:>8.1f}")
        await engine.dispose()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.tools, args.repeat, args.database_url)))
