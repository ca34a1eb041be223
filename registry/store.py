"""Registry storage: one SQL implementation for SQLite and PostgreSQL (its
search index in `registry.agent_search`, agents' health in `registry.agent_health`).

Every write is one transaction, so a failure anywhere (a conflict, a crash
mid-way) leaves the previous state untouched: nothing is half-written.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registry.agent_health import AgentHealthRecords, HealthTarget
from registry.agent_rows import agent_record, card_columns, insert_version
from registry.agent_search import (
    MAX_WORD,
    MAX_WORDS,
    InvalidCursor,
    card_facets,
    encode_cursor,
    encode_cursor_of,
    replace_facets,
    search_statement,
    search_text,
    search_words,
    skill_filters_match,
    words_match,
)
from registry.cards import ParsedCard
from registry.mcp_names import is_reserved_id
from registry.models import (
    AGENT_ID_PATTERN,
    AgentPage,
    AgentQuery,
    AgentRecord,
    CardVersion,
    HealthStatus,
)
from registry.name_holders import lock_names, refuse_agent_names, taken_by_mcp_server
from registry.signatures import SignatureCheck
from registry.tables import (
    agent_card_versions,
    agent_credentials,
    agent_facets,
    agent_health_events,
    agents,
    as_utc,
    vendor_agents,
)

# Imported from here by the API, the health checker and tests.
__all__ = [
    "MAX_WORD",
    "MAX_WORDS",
    "AgentConflict",
    "AgentNotFound",
    "HealthTarget",
    "InvalidCursor",
    "NewAgent",
    "SqlAgentStore",
    "card_facets",
    "encode_cursor",
    "is_agent_id",
    "search_text",
    "search_words",
    "skill_filters_match",
    "words_match",
]

_AGENT_ID = re.compile(AGENT_ID_PATTERN)


def is_agent_id(value: str) -> bool:
    """Only ids of the registry's shape can exist; anything else (a NUL, which
    PostgreSQL text cannot even hold) names no agent, without asking the database."""
    return _AGENT_ID.fullmatch(value) is not None


class AgentConflict(Exception):
    """An agent with this id or card URL already exists."""


class AgentNotFound(Exception):
    pass


@dataclass(frozen=True)
class NewAgent:
    id: str
    resource: str
    card_url: str | None
    parsed: ParsedCard
    signature: SignatureCheck
    pinned_keys: Mapping[str, Any] | None
    timeout_seconds: float | None = None
    skill_contracts: Mapping[str, Any] | None = None


class AgentStore(Protocol):
    async def create(self, agent: NewAgent) -> AgentRecord: ...
    async def get(self, agent_id: str) -> AgentRecord | None: ...
    async def registration(self, agent_id: str) -> tuple[str | None, Mapping[str, Any] | None]: ...
    async def card(
        self, agent_id: str, revision: int | None = None, *, original: bool = False
    ) -> dict[str, Any] | None: ...
    async def search(self, query: AgentQuery) -> AgentPage: ...
    async def delete(self, agent_id: str) -> bool: ...
    async def add_revision(
        self, agent_id: str, parsed: ParsedCard, signature: SignatureCheck
    ) -> tuple[AgentRecord, bool]: ...
    async def versions(self, agent_id: str) -> list[CardVersion] | None: ...
    async def id_for_resource(self, resource: str) -> str | None: ...
    async def id_taken(self, agent_id: str) -> bool: ...


class SqlAgentStore(AgentHealthRecords):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # Writes -----------------------------------------------------------------

    async def create(
        self,
        agent: NewAgent,
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> AgentRecord:
        """Store a new agent; ``also`` writes more rows in the same transaction."""
        now = _now()
        row = {
            "id": agent.id,
            "card_url": agent.card_url,
            "resource": agent.resource,
            "timeout_seconds": agent.timeout_seconds,
            "skill_contracts": dict(agent.skill_contracts) if agent.skill_contracts else None,
            "pinned_keys": dict(agent.pinned_keys) if agent.pinned_keys else None,
            "revision": 1,
            "health_status": HealthStatus.UNKNOWN.value,
            "health_failures": 0,
            "health_successes": 0,
            "registered_at": now,
            "updated_at": now,
            **card_columns(agent.parsed, agent.signature),
        }
        try:
            async with self._engine.begin() as conn:
                # Agents and MCP servers share one id space (both are served at
                # /a2a/{id} and named agents.<id> in the policy) and one space of
                # token audiences (a resource names one target); its skills'
                # names on /mcp must be free (registry.mcp_names).
                await lock_names(conn)
                if await taken_by_mcp_server(conn, agent.id, agent.resource):
                    raise AgentConflict(
                        f"{agent.id}: an MCP server has this id or resource {agent.resource}"
                    )
                await refuse_agent_names(conn, agent.id, agent.parsed.skill_ids)
                await conn.execute(insert(agents).values(**row))
                await insert_version(conn, agent.id, 1, agent.parsed, agent.signature, now)
                await replace_facets(conn, agent.id, agent.parsed)
                if also is not None:
                    await also(conn)
        except IntegrityError:
            raise AgentConflict(await self._conflict(agent)) from None
        record = await self.get(agent.id)
        assert record is not None
        return record

    async def _conflict(self, agent: NewAgent) -> str:
        """Which registered agent holds the id, card URL or resource ``agent`` wants."""
        async with self._engine.connect() as conn:
            for column, value, what in (
                (agents.c.id, agent.id, "the id"),
                (agents.c.card_url, agent.card_url, "the card URL"),
                (agents.c.resource, agent.resource, "the resource"),
            ):
                if value is None:
                    continue
                holder = (await conn.execute(select(agents.c.id).where(column == value))).scalar()
                if holder is not None:
                    return f"agent {holder!r} already has {what} {value}"
        return f"{agent.id}: an agent with this id, card URL or resource exists"

    async def add_revision(
        self, agent_id: str, parsed: ParsedCard, signature: SignatureCheck
    ) -> tuple[AgentRecord, bool]:
        """Store ``parsed`` as the next revision unless unchanged; return (record, changed)."""
        now = _now()
        async with self._engine.begin() as conn:
            current = (
                await conn.execute(
                    select(agents.c.revision, agents.c.card_digest).where(agents.c.id == agent_id)
                )
            ).first()
            if current is None:
                raise AgentNotFound(agent_id)
            changed = current.card_digest != parsed.digest
            if changed:
                await refuse_agent_names(conn, agent_id, parsed.skill_ids)
                revision = current.revision + 1
                # The WHERE on the old revision makes two concurrent refreshes
                # serialise: the loser updates nothing and retries via the PK.
                result = await conn.execute(
                    update(agents)
                    .where(agents.c.id == agent_id, agents.c.revision == current.revision)
                    .values(revision=revision, updated_at=now, **card_columns(parsed, signature))
                )
                if result.rowcount != 1:
                    raise AgentConflict(agent_id)
                await insert_version(conn, agent_id, revision, parsed, signature, now)
                await replace_facets(conn, agent_id, parsed)
        record = await self.get(agent_id)
        if record is None:
            raise AgentNotFound(agent_id)
        return record, changed

    async def delete(self, agent_id: str) -> bool:
        if not is_agent_id(agent_id):
            return False
        async with self._engine.begin() as conn:
            # Children first: SQLite enforces ON DELETE CASCADE only with a PRAGMA.
            await conn.execute(
                delete(agent_credentials).where(agent_credentials.c.agent_id == agent_id)
            )
            await conn.execute(delete(vendor_agents).where(vendor_agents.c.agent_id == agent_id))
            await conn.execute(delete(agent_facets).where(agent_facets.c.agent_id == agent_id))
            await conn.execute(
                delete(agent_health_events).where(agent_health_events.c.agent_id == agent_id)
            )
            await conn.execute(
                delete(agent_card_versions).where(agent_card_versions.c.agent_id == agent_id)
            )
            result = await conn.execute(delete(agents).where(agents.c.id == agent_id))
        return bool(result.rowcount)

    # Reads ------------------------------------------------------------------

    async def get(self, agent_id: str) -> AgentRecord | None:
        found = await self.get_with_card(agent_id)
        return found[0] if found else None

    async def get_with_card(self, agent_id: str) -> tuple[AgentRecord, dict[str, Any]] | None:
        """The record and its current normalised card, from one row read."""
        if not is_agent_id(agent_id):
            return None
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(agents).where(agents.c.id == agent_id)))
                .mappings()
                .first()
            )
        return (agent_record(row), row["card"]) if row else None

    async def ids_starting(self, start: str) -> list[str]:
        """The agents whose id starts with ``start`` (a name on /mcp cut short
        names one of them: `registry.mcp_names.cut_hashed`)."""
        query = select(agents.c.id).where(agents.c.id.startswith(start, autoescape=True))
        async with self._engine.connect() as conn:
            return list((await conn.execute(query.order_by(agents.c.id).limit(100))).scalars())

    async def id_for_resource(self, resource: str) -> str | None:
        """The agent whose minted tokens carry ``resource`` as their audience."""
        if "\x00" in resource:  # PostgreSQL text cannot hold NUL: it names nothing
            return None
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(agents.c.id).where(agents.c.resource == resource))
        return str(found) if found is not None else None

    async def id_taken(self, agent_id: str) -> bool:
        if is_reserved_id(agent_id):
            return True
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(agents.c.id).where(agents.c.id == agent_id))
            return found is not None or await taken_by_mcp_server(conn, agent_id, None)

    async def registration(self, agent_id: str) -> tuple[str | None, Mapping[str, Any] | None]:
        """(card URL, pinned keys) for a refresh; raises `AgentNotFound`."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(agents.c.card_url, agents.c.pinned_keys).where(agents.c.id == agent_id)
                )
            ).first()
        if row is None:
            raise AgentNotFound(agent_id)
        return row.card_url, row.pinned_keys

    async def card(
        self, agent_id: str, revision: int | None = None, *, original: bool = False
    ) -> dict[str, Any] | None:
        """The normalised 1.0 card (or, with ``original``, the card as registered)."""
        if not is_agent_id(agent_id):
            return None
        async with self._engine.connect() as conn:
            if revision is None:
                column = agents.c.original_card if original else agents.c.card
                value = await conn.scalar(select(column).where(agents.c.id == agent_id))
            else:
                versions = agent_card_versions.c
                value = await conn.scalar(
                    select(versions.original_card if original else versions.card).where(
                        agent_card_versions.c.agent_id == agent_id,
                        agent_card_versions.c.revision == revision,
                    )
                )
        return dict(value) if value is not None else None

    async def versions(self, agent_id: str) -> list[CardVersion] | None:
        if not is_agent_id(agent_id):
            return None
        async with self._engine.connect() as conn:
            if not await conn.scalar(select(exists().where(agents.c.id == agent_id))):
                return None
            rows = (
                await conn.execute(
                    select(agent_card_versions)
                    .where(agent_card_versions.c.agent_id == agent_id)
                    .order_by(agent_card_versions.c.revision.desc())
                )
            ).mappings()
            return [
                CardVersion(
                    revision=r["revision"],
                    version=r["card_version"],
                    card_digest=r["card_digest"],
                    signature_status=r["signature_status"],
                    created_at=as_utc(r["created_at"]),
                )
                for r in rows
            ]

    async def search(self, query: AgentQuery) -> AgentPage:
        """One page of agents matching ``query`` (see `search_with_cards`)."""
        page, _ = await self.search_with_cards(query)
        return page

    async def all_with_cards(
        self, page_size: int = 200
    ) -> AsyncIterator[tuple[AgentRecord, dict[str, Any]]]:
        """Every agent with its stored card, in id order, a page at a time."""
        query = AgentQuery(limit=page_size)
        while True:
            page, cards = await self.search_with_cards(query)
            for record in page.items:
                yield record, cards[record.id]
            if page.next_cursor is None:
                return
            query = query.model_copy(update={"cursor": page.next_cursor})

    async def search_with_cards(
        self, query: AgentQuery
    ) -> tuple[AgentPage, dict[str, dict[str, Any]]]:
        """One page of agents in id order, every filter answered from the facet index.

        The first exact filter (skill, tag, media type) drives the query: its
        index range is already in agent_id order, so the page is read without
        a sort and the scan stops after ``limit`` rows, however many agents
        match. Further filters and free-text words are point lookups on the
        facet primary key (agent_id, kind, value) for each candidate.
        """
        statement = search_statement(query)
        async with self._engine.connect() as conn:
            rows = list((await conn.execute(statement)).mappings())
        items = [agent_record(r) for r in rows[: query.limit]]
        next_cursor = encode_cursor_of(items[-1].id) if len(rows) > query.limit else None
        cards = {r["id"]: r["card"] for r in rows[: query.limit]}
        return AgentPage(items=items, next_cursor=next_cursor), cards

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(agents)) or 0)

    async def fingerprint(self) -> tuple[int, str, int]:
        """What changes whenever an agent is added, removed or given a new
        card, on any replica: their count, the latest `updated_at` and the sum
        of their revisions (a new card is a new revision, whatever the clock of
        the replica that stored it says). All three read one narrow index
        (migration 0024), not the cards. For caches of the whole registry."""
        query = select(func.count(), func.max(agents.c.updated_at), func.sum(agents.c.revision))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return int(row[0] or 0), str(row[1]), int(row[2] or 0)


# Helpers ----------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)
