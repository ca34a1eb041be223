"""Tool search (`switchboard__search_tools`) over a labelled corpus of
real-looking tools (`bench.search_corpus`: 307 tools, 43 servers): how often
a right tool is in the top 5, against a plain BM25 on the same corpus and
queries, and what a search costs at 10,000 tools.

    python -m bench.tool_search                 # SQLite
    python -m bench.tool_search --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench
    python -m bench.tool_search --corpus published   # tools as published, never tuned on

Quality, for each split of `bench.search_queries` (held out: written before
the ranker was tuned, never tuned on; tuning: what its weights were chosen
on): recall@5 (a right tool in the top five), nDCG@5 and MRR of the
gateway's search through its index on the database, and of `bench.plain_bm25`
(BM25 over name + description with a stopword list), and the ratio of the
two. Speed: p50/p99 of `ToolSearch.search` (the ranker and the caller's
filter) with the catalog grown to ``--tools`` by numbered copies of its
servers, for a caller who may call every tool and for one who may call 300;
baseline in the same run on the same table: a primary-key read.
``--corpus published`` runs the same on `bench.corpora.published`: 349
tools of 12 published MCP servers, copied from their source, and 75 queries
written before the ranker ever ran on them (one split, never tuned on).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import mcp_types as types
from sqlalchemy import select

from bench.corpora import published
from bench.corpora.published.queries import QUERIES as PUBLISHED
from bench.plain_bm25 import PlainBM25
from bench.registry_search import measure, percentile
from bench.search_corpus import corpus_tools
from bench.search_queries import HELD_OUT, TUNING, Labelled
from gateway.mcp.tool_search import ToolSearch
from gateway.storage import db
from registry.search_words import terms, written_initials
from registry.semantic_leg import SemanticLeg
from registry.tables import tool_docs
from registry.tool_index import SqlToolIndex, ToolDocument, document, fields
from registry.tool_ranker import FIELDS

Ranking = tuple[list[str], tuple[str, ...]]  # the answer's names, the right ones
RANKED = 20  # MRR counts a right tool this far down
Splits = dict[str, list[Labelled]]
CORPORA: dict[str, tuple[Callable[[], list[dict[str, Any]]], Splits]] = {
    "project": (corpus_tools, {"held out": HELD_OUT, "tuning": TUNING}),
    "published": (published.corpus_tools, {"held out": PUBLISHED}),
}


def grown(base: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The catalog, then numbered copies of its servers (`crm2__find_contact`)
    until ``count`` tools: a company with many instances of the same kinds."""
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


def scores(rankings: Sequence[Ranking]) -> tuple[float, float, float]:
    """recall@5 (a right tool among the first five), nDCG@5 (binary gains,
    ideal: the right tools first) and MRR (the first right tool's rank)."""
    hits = ndcg = mrr = 0.0
    for names, right in rankings:
        ranks = [i for i, name in enumerate(names) if name in right]
        hits += bool(ranks) and ranks[0] < 5
        dcg = sum(1 / math.log2(i + 2) for i in ranks if i < 5)
        ndcg += dcg / sum(1 / math.log2(i + 2) for i in range(min(len(right), 5)))
        mrr += 1 / (ranks[0] + 1) if ranks else 0.0
    return hits / len(rankings), ndcg / len(rankings), mrr / len(rankings)


def unreachable(defs: Sequence[dict[str, Any]], queries: Sequence[Labelled]) -> int:
    """How many ``queries`` share no term with any of their right tools'
    indexed fields: no lexical ranker can find those."""
    indexed = {d.name: {t for f in FIELDS for t in fields(d).terms_of(f)} for d in documents(defs)}
    return sum(
        not {*terms(query), *written_initials(query)} & set().union(*(indexed[r] for r in right))
        for query, right in queries
    )


async def quality(
    search: ToolSearch, defs: list[dict[str, Any]], splits: Splits, label: str
) -> dict[str, float]:
    """Both rankers on each split, printed; the gateway's held-out recall
    and its ratio to the plain BM25's, returned."""
    offered, plain = as_tools(defs), PlainBM25(defs)
    servers = len({d["name"].split("__")[0] for d in defs})
    print(f"\n{label}; corpus: {len(defs)} tools, {servers} servers")
    print(f"{'':<34}{'recall@5':>9}{'nDCG@5':>9}{'MRR':>9}")
    figures: dict[str, float] = {}
    for split, queries in splits.items():
        gateway = [
            ([t.name for t in await search.search(q, offered, RANKED)], right)
            for q, right in queries
        ]
        baseline = [(plain.rank(q, RANKED), right) for q, right in queries]
        ours, theirs = scores(gateway), scores(baseline)
        missing = unreachable(defs, queries)
        print(f"{split} ({len(queries)} queries, {missing} sharing no term with a right tool:")
        print(f"  a lexical ranker's recall@5 is at most {1 - missing / len(queries):.3f})")
        print(f"{'  search_tools':<34}{ours[0]:>9.3f}{ours[1]:>9.3f}{ours[2]:>9.3f}")
        print(f"{'  plain BM25, name + description':<34}" + "".join(f"{x:>9.3f}" for x in theirs))
        ratio = [a / b if b else math.inf for a, b in zip(ours, theirs, strict=True)]
        print(f"{'  ratio':<34}" + "".join(f"{x:>8.2f}x" for x in ratio))
        for (names, right), (query, _) in zip(gateway, queries, strict=True):
            if not set(names[:5]) & set(right):
                print(f"    missed: {query!r} -> {right[0]} (got {names[:2]})")
        figures[f"{split} recall"], figures[f"{split} ratio"] = ours[0], ratio[0]
    return figures


async def semantic_quality(
    engine: Any, search_over: Callable[..., ToolSearch], defs: list[dict[str, Any]], splits: Splits
) -> None:
    """`quality` with the semantic leg on, once it has embedded the corpus."""
    leg = SemanticLeg()
    search = search_over(defs, SqlToolIndex(engine, semantic=leg))
    await search.search("warm up", as_tools(defs[:1]), 1)
    started = time.perf_counter()
    if not await leg.settled():
        print("\nsemantic leg: not installed (pip install 'switchboard[semantic]')")
        return
    print(f"\nsemantic leg: model loaded, corpus embedded in {time.perf_counter() - started:.1f} s")
    await quality(search, defs, splits, "lexical + semantic, fused")
    queries = [q for split in splits.values() for q, _ in split]
    names = {d["name"] for d in defs}
    cpu = time.process_time()
    for query in queries:
        await leg.ranking(query, names, 5)
    per_query = (time.process_time() - cpu) / len(queries) * 1000
    print(
        f"semantic leg: {per_query:.1f} ms CPU per query (embedded, compared with {len(names)} tools)"
    )


async def main(count: int, repeat: int, database_url: str | None, corpus: str) -> int:
    tools, splits = CORPORA[corpus]
    defs = tools()
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        engine = db.create_engine(url)
        await db.upgrade(engine)
        index = SqlToolIndex(engine)

        def search_over(defs: list[dict[str, Any]], on: SqlToolIndex = index) -> ToolSearch:
            key = (object(),)
            docs = documents(defs)

            async def catalog() -> Any:
                return key, lambda: docs

            return ToolSearch(on, catalog)

        await quality(search_over(defs), defs, splits, "lexical only (BM25F)")
        await semantic_quality(engine, search_over, defs, splits)

        everything = grown(defs, count)
        search = search_over(everything)
        started = time.perf_counter()
        await search.search(
            "warm up", as_tools(everything[:1]), 1
        )  # brings the index in step: count documents
        print(f"\nindexed {len(everything)} tools in {time.perf_counter() - started:.1f} s")
        offered_all = as_tools(everything)
        rng = random.Random(5)
        offered_some = rng.sample(offered_all, 300)
        queries = [q for split in splits.values() for q, _ in split]
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
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="project")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.tools, args.repeat, args.database_url, args.corpus)))
