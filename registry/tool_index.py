"""Tool search's index: one document per tool `/mcp` can offer, ranked by the
database's own full-text search -- SQLite FTS5's BM25, PostgreSQL's
`ts_rank` over a weighted `tsvector` (migration 0029) -- never by a ranker
of our own.

A document is what a client would read to choose a tool: its name split
into words (``crm__find_contact`` is "crm find contact"), its title, its
description and its parameters' names and descriptions. The index holds
every tool of the catalog whoever may call it; who may see which is decided
by the caller's own listing, which filters the ranked names
(`gateway.mcp.tool_search`). Every replica keeps it in step with what it
sees (`sync`): documents are compared by digest, so replicas writing the
same catalog write nothing twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registry.tables import tool_docs

MAX_QUERY_WORDS = 32
MAX_WORD = 64
MAX_FIELD = 8_000  # of a description or the parameters: no tool's essay floods the index
MATCHES_READ = 2_000  # ranked names read when the caller's tools are too many to name
NAMED_AT_MOST = 500  # a caller with at most this many tools: the query names them
_WORD = re.compile(r"[^\W_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# SQLite's bm25() weights, in the FTS table's column order: a word in a
# tool's name or title says more than one in its description.
_BM25 = "bm25(tool_docs_fts, 4.0, 3.0, 1.0, 1.5)"


@dataclass(frozen=True)
class ToolDocument:
    name: str
    name_words: str
    title: str
    description: str
    params: str

    @property
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
    return [w for part in _WORD.findall(name) for w in _CAMEL.split(part) if w]


def query_words(query: str) -> list[str]:
    """The words of a free-text query, lower-cased, each once, in order:
    letters and digits only, so nothing in them is query syntax."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        seen.setdefault(word[:MAX_WORD], None)
    return list(seen)[:MAX_QUERY_WORDS]


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
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgresql = engine.dialect.name == "postgresql"

    async def sync(self, documents: Sequence[ToolDocument]) -> tuple[int, int]:
        """Make the index hold exactly ``documents``: (written, removed). Two
        replicas adding the same tool at once: the one that lost reads again."""
        try:
            return await self._sync(documents)
        except IntegrityError:
            return await self._sync(documents)

    async def _sync(self, documents: Sequence[ToolDocument]) -> tuple[int, int]:
        wanted = {d.name: d for d in documents}
        async with self._engine.begin() as conn:
            held = dict((await conn.execute(select(tool_docs.c.name, tool_docs.c.digest))).all())
            gone = [name for name in held if name not in wanted]
            new = [d for name, d in wanted.items() if name not in held]
            changed = [d for name, d in wanted.items() if name in held and held[name] != d.digest]
            if gone:
                for chunk in _chunks(gone, 500):
                    await conn.execute(delete(tool_docs).where(tool_docs.c.name.in_(chunk)))
            if new:
                await conn.execute(tool_docs.insert(), [_row(d) for d in new])
            if changed:
                await _update(conn, changed)
        return len(new) + len(changed), len(gone)

    async def search(
        self, words: Sequence[str], among: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """Names matching any of ``words``, best first, with their scores
        (higher is better). ``among``: only these names (a caller's few);
        otherwise the best `MATCHES_READ`."""
        if not words or (among is not None and not among):
            return []
        if self._postgresql:
            statement, params = _postgresql_query(words, among)
        else:
            statement, params = _sqlite_query(words, among)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement, params)).all()
        return [(row[0], float(row[1])) for row in rows]


def _sqlite_query(words: Sequence[str], among: Sequence[str] | None) -> tuple[Any, dict[str, Any]]:
    # Each word a quoted FTS5 string (letters and digits only: no syntax).
    match = " OR ".join(f'"{w}"' for w in words)
    params: dict[str, Any] = {"match": match, "limit": MATCHES_READ}
    where = "tool_docs_fts MATCH :match"
    if among is not None:
        where += " AND d.name IN :among"
        params["among"] = list(among)
    statement = text(
        f"SELECT d.name, -{_BM25} AS score FROM tool_docs_fts "  # noqa: S608 -- constants only
        f"JOIN tool_docs d ON d.id = tool_docs_fts.rowid WHERE {where} "
        "ORDER BY score DESC, d.name LIMIT :limit"
    )
    if among is not None:
        statement = statement.bindparams(bindparam("among", expanding=True))
    return statement, params


def _postgresql_query(
    words: Sequence[str], among: Sequence[str] | None
) -> tuple[Any, dict[str, Any]]:
    # Any of the words (`|`), each stemmed by the 'english' configuration.
    # Weights D, C, B, A (parameters 0.4, description 0.8, name and title 1):
    # `ts_rank` has no notion of a word's rarity, and with its default
    # weights (0.1, 0.2, 0.4, 1) a common word in many tools' names (order,
    # orders__get_order) outranked the description that answers the query
    # (`bench.tool_search`: recall@5 0.84 -> 0.88, nDCG@5 0.72 -> 0.83).
    params: dict[str, Any] = {"query": " | ".join(words), "limit": MATCHES_READ}
    where = "document @@ q"
    if among is not None:
        where += " AND name IN :among"
        params["among"] = list(among)
    statement = text(
        "SELECT name, ts_rank('{0.2, 0.4, 0.8, 1.0}', document, q, 0) AS score "  # noqa: S608 -- constants only
        f"FROM tool_docs, to_tsquery('english', :query) q WHERE {where} "
        "ORDER BY score DESC, name LIMIT :limit"
    )
    if among is not None:
        statement = statement.bindparams(bindparam("among", expanding=True))
    return statement, params


def _row(d: ToolDocument) -> dict[str, str]:
    return {
        "name": d.name,
        "digest": d.digest,
        "name_words": d.name_words,
        "title": d.title,
        "description": d.description,
        "params": d.params,
    }


async def _update(conn: AsyncConnection, changed: Sequence[ToolDocument]) -> None:
    statement = (
        update(tool_docs)
        .where(tool_docs.c.name == bindparam("old_name"))
        .values(
            digest=bindparam("digest"),
            name_words=bindparam("name_words"),
            title=bindparam("title"),
            description=bindparam("description"),
            params=bindparam("params"),
        )
    )
    rows = [{**_row(d), "old_name": d.name} for d in changed]
    for row in rows:
        row.pop("name")
    await conn.execute(statement, rows)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
