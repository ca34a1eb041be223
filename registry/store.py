"""Registry storage: one SQL implementation for SQLite and PostgreSQL.

Every write is one transaction, so a failure anywhere (a conflict, a crash
mid-way) leaves the previous state untouched: nothing is half-written.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from registry.cards import ParsedCard
from registry.health_history import history, note_change
from registry.mcp_names import is_reserved_id
from registry.models import (
    AGENT_ID_PATTERN,
    AgentPage,
    AgentQuery,
    AgentRecord,
    CardVersion,
    HealthEvent,
    HealthInfo,
    HealthStatus,
    InterfaceSummary,
    SignatureInfo,
    SkillSummary,
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

_WORD = re.compile(r"[^\W_]+")
_AGENT_ID = re.compile(AGENT_ID_PATTERN)


def is_agent_id(value: str) -> bool:
    """Only ids of the registry's shape can exist; anything else (a NUL, which
    PostgreSQL text cannot even hold) names no agent, without asking the database."""
    return _AGENT_ID.fullmatch(value) is not None


MAX_WORD = 64
MAX_WORDS = 4000
# Upper bound for a prefix range: sorts after every string starting with the prefix.
_MAX_CHAR = "\U0010ffff"


class AgentConflict(Exception):
    """An agent with this id or card URL already exists."""


class AgentNotFound(Exception):
    pass


class InvalidCursor(ValueError):
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


@dataclass(frozen=True)
class HealthTarget:
    agent_id: str
    card_url: str | None
    interface_url: str | None


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


class SqlAgentStore:
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
            **_card_columns(agent.parsed, agent.signature),
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
                await _insert_version(conn, agent.id, 1, agent.parsed, agent.signature, now)
                await _replace_facets(conn, agent.id, agent.parsed)
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
                    .values(revision=revision, updated_at=now, **_card_columns(parsed, signature))
                )
                if result.rowcount != 1:
                    raise AgentConflict(agent_id)
                await _insert_version(conn, agent_id, revision, parsed, signature, now)
                await _replace_facets(conn, agent_id, parsed)
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
        return (_record(row), row["card"]) if row else None

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
        exact = [
            (kind, value)
            for kind, value in (
                ("skill", query.skill),
                ("tag", query.tag.lower() if query.tag else None),
                ("input", query.input_mode),
                ("output", query.output_mode),
            )
            if value
        ]
        statement = select(*_RECORD_COLUMNS)
        order = agents.c.id
        if exact:
            kind, value = exact.pop(0)
            driver = agent_facets.alias("driver")
            statement = statement.join_from(agents, driver, driver.c.agent_id == agents.c.id).where(
                driver.c.kind == kind, driver.c.value == value
            )
            order = driver.c.agent_id
        for kind, value in exact:
            statement = statement.where(_has_facet(kind, agent_facets.c.value == value))
        # Every word of the query must begin a word of the card. Without an
        # exact filter the longest word (likely the rarest) drives, through
        # the index, so a query that matches nothing reads almost nothing.
        words = sorted(search_words(query.q or ""), key=lambda w: (-len(w), w))
        for position, word in enumerate(words):
            prefix = (agent_facets.c.value >= word) & (agent_facets.c.value < word + _MAX_CHAR)
            if position == 0 and order is agents.c.id:
                driving = select(agent_facets.c.agent_id).where(
                    agent_facets.c.kind == "word", prefix
                )
                statement = statement.where(agents.c.id.in_(driving))
            else:
                statement = statement.where(_has_facet("word", prefix))
        if query.cursor:
            statement = statement.where(order > _decode_cursor(query.cursor))
        statement = statement.order_by(order).limit(query.limit + 1)
        async with self._engine.connect() as conn:
            rows = list((await conn.execute(statement)).mappings())
        items = [_record(r) for r in rows[: query.limit]]
        next_cursor = _encode_cursor(items[-1].id) if len(rows) > query.limit else None
        cards = {r["id"]: r["card"] for r in rows[: query.limit]}
        return AgentPage(items=items, next_cursor=next_cursor), cards

    # Health -----------------------------------------------------------------

    async def health_targets(self, checked_before: datetime | None = None) -> list[HealthTarget]:
        """Every agent, or (``checked_before``) those not checked since then."""
        query = select(agents.c.id, agents.c.card_url, agents.c.card)
        if checked_before is not None:
            query = query.where(
                or_(
                    agents.c.health_checked_at.is_(None),
                    agents.c.health_checked_at < checked_before,
                )
            )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        targets = []
        for row in rows:
            interfaces = row.card.get("supportedInterfaces") or []
            first = interfaces[0].get("url") if interfaces else None
            targets.append(HealthTarget(row.id, row.card_url, first))
        return targets

    async def claim_health_check(self, agent_id: str, lease: timedelta) -> bool:
        """Take the right to check ``agent_id`` now; false if another check holds it.

        A conditional UPDATE is atomic on both databases, so across replicas
        too, one agent is never checked twice at once.
        """
        now = _now()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(agents)
                .where(
                    agents.c.id == agent_id,
                    or_(agents.c.health_lease_until.is_(None), agents.c.health_lease_until < now),
                )
                .values(health_lease_until=now + lease)
            )
        return result.rowcount == 1

    async def record_health(
        self,
        agent_id: str,
        status: HealthStatus,
        failures: int,
        successes: int,
        detail: str | None,
    ) -> None:
        now = _now()
        async with self._engine.begin() as conn:
            previous = await conn.scalar(
                select(agents.c.health_status).where(agents.c.id == agent_id)
            )
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id)
                .values(
                    health_status=status.value,
                    health_failures=failures,
                    health_successes=successes,
                    health_detail=detail,
                    health_checked_at=now,
                    health_lease_until=None,
                )
            )
            if previous is not None:  # the agent is still registered
                await note_change(conn, agent_id, previous, status, detail, now)

    async def health_history(self, agent_id: str, limit: int = 50) -> list[HealthEvent]:
        """The agent's changes of health, newest first (`registry.health_history`)."""
        return await history(self._engine, agent_id, limit)

    async def health_state(self, agent_id: str) -> tuple[HealthStatus, int, int] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        agents.c.health_status, agents.c.health_failures, agents.c.health_successes
                    ).where(agents.c.id == agent_id)
                )
            ).first()
        if row is None:
            return None
        return HealthStatus(row.health_status), row.health_failures, row.health_successes

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


def _card_columns(parsed: ParsedCard, signature: SignatureCheck) -> dict[str, Any]:
    card = parsed.card
    return {
        "name": card.name,
        "description": card.description,
        "card_version": card.version,
        "protocol_version": parsed.protocol_version,
        "card": parsed.normalized,
        "original_card": parsed.original,
        "card_digest": parsed.digest,
        "signature_status": signature.status.value,
        "signature_detail": signature.detail,
    }


def _search_text(parsed: ParsedCard) -> str:
    return search_text(parsed.normalized, parsed.normalized.get("skills") or [])


def search_text(card: Mapping[str, Any], skills: Iterable[Mapping[str, Any]]) -> str:
    """What free-text search reads of a stored (1.0 JSON) card: its name,
    description and provider, and the id, name, description, tags and examples
    of each of ``skills`` (all the card's, or those a caller is shown)."""
    provider = card.get("provider")
    pieces: list[Any] = [
        card.get("name"),
        card.get("description"),
        provider.get("organization") if isinstance(provider, Mapping) else None,
    ]
    for skill in skills:
        pieces += [skill.get("id"), skill.get("name"), skill.get("description")]
        pieces += [*(skill.get("tags") or ()), *(skill.get("examples") or ())]
    return "\n".join(p for p in pieces if isinstance(p, str) and p)


def search_words(text: str) -> set[str]:
    """Lower-cased letter/digit runs: what free-text search matches by prefix."""
    return {w[:MAX_WORD] for w in _WORD.findall(text.lower())}


def _has_facet(kind: str, condition: ColumnElement[bool]) -> Any:
    return exists().where(
        agent_facets.c.agent_id == agents.c.id, agent_facets.c.kind == kind, condition
    )


def _facets(parsed: ParsedCard) -> set[tuple[str, str]]:
    card = parsed.card
    facets: set[tuple[str, str]] = set()
    facets.update(("input", m) for m in card.default_input_modes)
    facets.update(("output", m) for m in card.default_output_modes)
    facets.update(("word", w) for w in sorted(search_words(_search_text(parsed)))[:MAX_WORDS])
    for skill in card.skills:
        facets.add(("skill", skill.id))
        facets.update(("tag", t.lower()) for t in skill.tags)
        facets.update(("input", m) for m in skill.input_modes)
        facets.update(("output", m) for m in skill.output_modes)
    return {(k, v[:255]) for k, v in facets if v}


async def _replace_facets(conn: AsyncConnection, agent_id: str, parsed: ParsedCard) -> None:
    await conn.execute(delete(agent_facets).where(agent_facets.c.agent_id == agent_id))
    rows = [{"agent_id": agent_id, "kind": k, "value": v} for k, v in sorted(_facets(parsed))]
    if rows:
        await conn.execute(insert(agent_facets), rows)


async def _insert_version(
    conn: AsyncConnection,
    agent_id: str,
    revision: int,
    parsed: ParsedCard,
    signature: SignatureCheck,
    now: datetime,
) -> None:
    await conn.execute(
        insert(agent_card_versions).values(
            agent_id=agent_id,
            revision=revision,
            card=parsed.normalized,
            original_card=parsed.original,
            card_digest=parsed.digest,
            card_version=parsed.card.version,
            signature_status=signature.status.value,
            created_at=now,
        )
    )


# What a record shows; the original card and pinned keys stay in the database.
_RECORD_COLUMNS = [
    c for c in agents.c if c.name not in ("original_card", "pinned_keys", "health_lease_until")
]


def _record(row: RowMapping) -> AgentRecord:
    card: dict[str, Any] = row["card"]
    return AgentRecord(
        id=row["id"],
        resource=row["resource"],
        timeout_seconds=row["timeout_seconds"],
        skill_contracts=row["skill_contracts"] or {},
        name=row["name"],
        description=row["description"],
        version=row["card_version"],
        protocol_version=row["protocol_version"],
        revision=row["revision"],
        card_url=row["card_url"],
        card_digest=row["card_digest"],
        skills=[_skill(s) for s in card.get("skills", [])],
        interfaces=[
            InterfaceSummary(
                url=i.get("url", ""),
                protocol_binding=i.get("protocolBinding", ""),
                protocol_version=i.get("protocolVersion", ""),
            )
            for i in card.get("supportedInterfaces", [])
        ],
        health=HealthInfo(
            status=HealthStatus(row["health_status"]),
            consecutive_failures=row["health_failures"],
            checked_at=as_utc(row["health_checked_at"]) if row["health_checked_at"] else None,
            detail=row["health_detail"],
        ),
        signature=SignatureInfo(status=row["signature_status"], detail=row["signature_detail"]),
        registered_at=as_utc(row["registered_at"]),
        updated_at=as_utc(row["updated_at"]),
    )


def skill_filters_match(
    query: AgentQuery, card: Mapping[str, Any], skills: list[dict[str, Any]]
) -> bool:
    """Whether the card, showing only ``skills`` of its own, still meets the
    query's exact filters (`search_with_cards` matched them on all its skills):
    a caller who may use some skills must not find an agent by another one."""
    if query.skill and query.skill not in {s["id"] for s in skills}:
        return False
    tags = {str(t).lower() for s in skills for t in s.get("tags") or ()}
    if query.tag and query.tag.lower() not in tags:
        return False
    for wanted, default, key in (
        (query.input_mode, "defaultInputModes", "inputModes"),
        (query.output_mode, "defaultOutputModes", "outputModes"),
    ):
        if wanted and wanted not in {
            *(card.get(default) or ()),
            *(m for s in skills for m in s.get(key) or ()),
        }:
            return False
    return True


def words_match(q: str | None, card: Mapping[str, Any], skills: list[dict[str, Any]]) -> bool:
    """Whether every word of ``q`` begins a word of the card as a caller shown
    only ``skills`` of its own reads it (`search_with_cards` matched the words
    on the whole card): no agent is found by a skill its caller is not shown."""
    wanted = search_words(q or "")
    if not wanted:
        return True
    words = search_words(search_text(card, skills))
    return all(any(word.startswith(w) for word in words) for w in wanted)


def _skill(skill: Mapping[str, Any]) -> SkillSummary:
    return SkillSummary(
        id=skill.get("id", ""),
        name=skill.get("name", ""),
        description=skill.get("description", ""),
        tags=list(skill.get("tags", [])),
        input_modes=list(skill.get("inputModes", [])),
        output_modes=list(skill.get("outputModes", [])),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def encode_cursor(agent_id: str) -> str:
    """The cursor that continues a listing after ``agent_id``."""
    return _encode_cursor(agent_id)


def _encode_cursor(agent_id: str) -> str:
    return base64.urlsafe_b64encode(agent_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not re.fullmatch(AGENT_ID_PATTERN, value):
        raise InvalidCursor("cursor is not one this API returned")
    return value
