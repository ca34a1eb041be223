"""Tool search's index: one document per tool `/mcp` can offer, ranked by the
database's own full-text search -- SQLite FTS5's BM25, PostgreSQL's
`ts_rank` over a weighted `tsvector` (migration 0029) -- never by a ranker
of our own.

A document is what a client would read to choose a tool: its name split
into words (``crm__find_contact`` is "crm find contact"), its title, its
description and its parameters' names and descriptions. The index holds
every tool of the catalog whoever may call it; who may see which is decided
by the caller's own listing, whose names the query is given: the database
ranks only those (`gateway.mcp.tool_search`). Every replica keeps it in step
with what it sees: documents are compared by digest and upserted, so
replicas writing the same catalog write nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import String, bindparam, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.tables import tool_docs

MAX_QUERY_WORDS = 32
MAX_WORD = 64
MAX_FIELD = 8_000  # of a description or the parameters: no tool's essay floods the index
T = TypeVar("T")
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

    async def held(self) -> dict[str, str]:
        """Every document's name and digest."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(tool_docs.c.name, tool_docs.c.digest))
            return {name: digest for name, digest in rows.all()}

    async def put(self, documents: Sequence[ToolDocument]) -> None:
        """Write ``documents`` (new, or changed since): an upsert, so replicas
        writing the same document at once both succeed, and one already
        there unchanged is not written again."""
        if not documents:
            return
        dialect_insert = postgresql_insert if self._postgresql else sqlite_insert
        async with self._engine.begin() as conn:
            for chunk in _chunks(documents, 500):
                statement = dialect_insert(tool_docs).values([_row(d) for d in chunk])
                fresh = statement.excluded
                await conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=[tool_docs.c.name],
                        set_={
                            column: getattr(fresh, column)
                            for column in ("digest", "name_words", "title", "description", "params")
                        },
                        where=tool_docs.c.digest != fresh.digest,
                    )
                )

    async def remove(self, names: Sequence[str]) -> None:
        async with self._engine.begin() as conn:
            for chunk in _chunks(names, 500):
                await conn.execute(delete(tool_docs).where(tool_docs.c.name.in_(chunk)))

    async def search(
        self, words: Sequence[str], among: Sequence[str], limit: int
    ) -> list[tuple[str, float]]:
        """The best ``limit`` of the tools named ``among`` (a caller's own)
        matching any of ``words``, with their scores (higher is better). The
        names are given to the database, which ranks only those: a caller
        never gets fewer answers because others' tools matched better."""
        if not words or not among:
            return []
        if self._postgresql:
            statement, params = _postgresql_query(words, among, limit)
        else:
            statement, params = _sqlite_query(words, among, limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement, params)).all()
        return [(row[0], float(row[1])) for row in rows]


def _sqlite_query(
    words: Sequence[str], among: Sequence[str], limit: int
) -> tuple[Any, dict[str, Any]]:
    # Each word a quoted FTS5 string (letters and digits only: no syntax);
    # the caller's names as one JSON array (any number of them, one parameter).
    statement = text(
        f"SELECT d.name, -{_BM25} AS score FROM tool_docs_fts "  # noqa: S608 -- constants only
        "JOIN tool_docs d ON d.id = tool_docs_fts.rowid "
        "WHERE tool_docs_fts MATCH :match AND d.name IN (SELECT value FROM json_each(:among)) "
        "ORDER BY score DESC, d.name LIMIT :limit"
    )
    match = " OR ".join(f'"{w}"' for w in words)
    return statement, {"match": match, "among": json.dumps(list(among)), "limit": limit}


def _postgresql_query(
    words: Sequence[str], among: Sequence[str], limit: int
) -> tuple[Any, dict[str, Any]]:
    # Any of the words (`|`), each stemmed by the 'english' configuration.
    # Weights D, C, B, A (parameters 0.4, description 0.8, name and title 1):
    # `ts_rank` has no notion of a word's rarity, and with its default
    # weights (0.1, 0.2, 0.4, 1) a common word in many tools' names (order,
    # orders__get_order) outranks the description that answers the query
    # (weights chosen on `bench.tool_search`; both sets in docs/performance.md).
    # Normalization 1 (rank / (1 + log(length))): a document cannot climb by
    # repeating a word.
    statement = text(
        "SELECT name, ts_rank('{0.2, 0.4, 0.8, 1.0}', document, q, 1) AS score "
        "FROM tool_docs, to_tsquery('english', :query) q "
        "WHERE document @@ q AND name IN (SELECT unnest(CAST(:among AS text[]))) "
        "ORDER BY score DESC, name LIMIT :limit"
    ).bindparams(bindparam("among", type_=ARRAY(String)))
    return statement, {"query": " | ".join(words), "among": list(among), "limit": limit}


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
