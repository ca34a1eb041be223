"""Tool search's index: one document per tool `/mcp` can offer, stored in
the database (table `tool_docs`, migration 0029) and ranked in memory by
`registry.tool_ranker` (BM25F), which every replica loads from those rows --
so SQLite and PostgreSQL rank alike, by construction.

A document is what a client would read to choose a tool: its name, its
title, its description and its parameters' names and descriptions. The
index holds every tool of the catalog whoever may call it; who may see which
is decided by the caller's own listing, whose names the query is given: only
those are ranked (`gateway.mcp.tool_search`). Every replica keeps it in step
with what it sees: documents are compared by digest and upserted, so
replicas writing the same catalog write nothing twice; and each reloads
into its ranker only the rows whose digest changed (`refresh`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.search_words import split_words
from registry.semantic_leg import SemanticLeg
from registry.tables import tool_docs
from registry.tool_fusion import fuse
from registry.tool_ranker import Fields, ToolRanker

MAX_FIELD = 8_000  # of a description or the parameters: no tool's essay floods the index
RANKED_AT_ONCE = 100  # documents indexed on the event loop between its other work
# How far down each leg's ranking is fused: a right tool the other leg
# ranks well may be this low in one.
FUSED_DEPTH = 50
T = TypeVar("T")


@dataclass(frozen=True)
class ToolDocument:
    name: str
    name_words: str
    title: str
    description: str
    params: str

    @functools.cached_property
    def digest(self) -> str:
        joined = "\x00".join(
            (self.name, self.name_words, self.title, self.description, self.params)
        )
        return hashlib.sha256(joined.encode()).hexdigest()


def document(
    name: str,
    title: str | None,
    description: str | None,
    input_schema: Mapping[str, Any] | None,
    extra: Iterable[str] = (),
) -> ToolDocument:
    """The document of one tool (``extra``: more words for its description,
    an agent skill's tags say)."""
    return ToolDocument(
        name=name,
        name_words=" ".join(words_of_name(name)),
        title=(title or "")[:MAX_FIELD],
        description=" ".join([description or "", *extra])[:MAX_FIELD],
        params=_parameters(input_schema)[:MAX_FIELD],
    )


def words_of_name(name: str) -> list[str]:
    """``crm__findContact-v2`` -> crm, find, Contact, v2."""
    return split_words(name)


def fields(d: ToolDocument) -> Fields:
    """A document as the ranker's fields: a federated name's server
    (``crm`` of ``crm__find_contact``) apart from the tool's own name."""
    server, joined, tool = d.name.partition("__")
    if not joined:
        server, tool = "", d.name
    return Fields(
        name=d.name,
        tool=tool,
        title=d.title,
        description=d.description,
        server=server,
        params=d.params,
    )


def semantic_text(d: ToolDocument) -> str:
    """What a tool's embedding is made from: what it does, not what it takes."""
    return ". ".join(part for part in (d.name_words, d.title, d.description) if part)


def _parameters(schema: Mapping[str, Any] | None) -> str:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return ""
    pieces: list[str] = []
    for key, spec in properties.items():
        pieces.append(" ".join(words_of_name(str(key))))
        if isinstance(spec, Mapping):
            for field in ("title", "description"):
                if isinstance(spec.get(field), str):
                    pieces.append(spec[field])
    return " ".join(pieces)


class SqlToolIndex:
    def __init__(
        self,
        engine: AsyncEngine,
        ranker: ToolRanker | None = None,
        semantic: SemanticLeg | None = None,
    ) -> None:
        self._engine = engine
        self._postgresql = engine.dialect.name == "postgresql"
        self._ranker = ranker or ToolRanker()
        self.semantic = semantic
        self._loaded: dict[str, str] = {}  # name -> digest of what the ranker holds

    @property
    def loaded(self) -> Mapping[str, str]:
        """Each document's name and digest as the ranker holds it."""
        return self._loaded

    async def held(self) -> dict[str, str]:
        """Every document's name and digest."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(tool_docs.c.name, tool_docs.c.digest))
            return {name: digest for name, digest in rows.all()}

    async def put(self, documents: Sequence[ToolDocument]) -> None:
        """Write ``documents`` (new, or changed since) and rank them: an
        upsert, so replicas writing the same document at once both succeed,
        and one already there unchanged is not written again."""
        if not documents:
            return
        dialect_insert = postgresql_insert if self._postgresql else sqlite_insert
        statement = dialect_insert(tool_docs)
        fresh = statement.excluded
        upsert = statement.on_conflict_do_update(
            index_elements=[tool_docs.c.name],
            set_={
                column: getattr(fresh, column)
                for column in ("digest", "name_words", "title", "description", "params")
            },
            where=tool_docs.c.digest != fresh.digest,
        )
        async with self._engine.begin() as conn:
            for chunk in _chunks(documents, 500):
                # Parameters apart from the statement (executemany): one
                # statement of 500 rows' VALUES would be compiled each time,
                # which costs more than writing them.
                await conn.execute(upsert, [_row(d) for d in chunk])
        # What was written is what the table holds: the ranker takes it now
        # rather than `refresh` reading it back (another replica's later
        # write has another digest, which `refresh` loads).
        for chunk in _chunks(documents, RANKED_AT_ONCE):
            for d in chunk:
                self._take(d, d.digest)
            await asyncio.sleep(0)  # the event loop's other work between chunks

    async def remove(self, names: Sequence[str]) -> None:
        async with self._engine.begin() as conn:
            for chunk in _chunks(names, 500):
                await conn.execute(delete(tool_docs).where(tool_docs.c.name.in_(chunk)))
        for name in names:
            self._drop(name)

    async def refresh(self) -> dict[str, str]:
        """Bring the ranker in step with the table: load the rows whose
        digest changed since it last did (another replica's writes
        included), drop those gone. Answers every document's name and
        digest (`held`), as read."""
        held = await self.held()
        for name in [n for n in self._loaded if n not in held]:
            self._drop(name)
        changed = [n for n, digest in held.items() if self._loaded.get(n) != digest]
        c = tool_docs.c
        columns = (c.name, c.digest, c.name_words, c.title, c.description, c.params)
        async with self._engine.connect() as conn:
            for chunk in _chunks(changed, RANKED_AT_ONCE):
                rows = await conn.execute(select(*columns).where(tool_docs.c.name.in_(chunk)))
                for name, digest, name_words, title, description, params in rows.all():
                    doc = ToolDocument(name, name_words, title, description, params)
                    self._take(doc, digest)
                await asyncio.sleep(0)
        return held

    async def search(self, query: str, among: Iterable[str], limit: int) -> list[tuple[str, float]]:
        """The best ``limit`` of the tools named ``among`` (a caller's own)
        for ``query``, with their scores (higher is better), as of the last
        `refresh`: only those are ranked, so a caller never gets fewer
        answers because others' tools matched better. With the semantic leg
        on and loaded, the lexical and semantic rankings fused
        (`registry.tool_fusion`)."""
        if self.semantic is None:
            return self._ranker.rank(query, among, limit)
        wanted = among if isinstance(among, (set, frozenset)) else set(among)
        depth = max(limit, FUSED_DEPTH)
        lexical = self._ranker.rank(query, wanted, depth)
        nearest = await self.semantic.scored(query, wanted, depth)
        if nearest is None:
            return lexical[:limit]
        names = [name for name, _ in nearest]
        similarities = [similarity for _, similarity in nearest]
        return fuse([n for n, _ in lexical], names, limit, semantic_scores=similarities)

    def _take(self, d: ToolDocument, digest: str) -> None:
        self._ranker.put(fields(d))
        self._loaded[d.name] = digest
        if self.semantic is not None:
            self.semantic.put(d.name, semantic_text(d))

    def _drop(self, name: str) -> None:
        self._ranker.remove(name)
        self._loaded.pop(name, None)
        if self.semantic is not None:
            self.semantic.remove(name)


def _row(d: ToolDocument) -> dict[str, str]:
    return {
        "name": d.name,
        "digest": d.digest,
        "name_words": d.name_words,
        "title": d.title,
        "description": d.description,
        "params": d.params,
    }


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
