"""How agents are found: the words and facets a card is indexed by, what a
caller shown only some skills of a card may find it by, listing cursors, and
the statement a search page is read with."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Select, delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from registry.agent_rows import RECORD_COLUMNS
from registry.cards import ParsedCard
from registry.models import AGENT_ID_PATTERN, AgentQuery
from registry.tables import agent_facets, agents

_WORD = re.compile(r"[^\W_]+")
MAX_WORD = 64
MAX_WORDS = 4000


class InvalidCursor(ValueError):
    pass


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


def has_facet(kind: str, condition: ColumnElement[bool]) -> Any:
    return exists().where(
        agent_facets.c.agent_id == agents.c.id, agent_facets.c.kind == kind, condition
    )


def card_facets(parsed: ParsedCard) -> set[tuple[str, str]]:
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


async def replace_facets(conn: AsyncConnection, agent_id: str, parsed: ParsedCard) -> None:
    await conn.execute(delete(agent_facets).where(agent_facets.c.agent_id == agent_id))
    rows = [{"agent_id": agent_id, "kind": k, "value": v} for k, v in sorted(card_facets(parsed))]
    if rows:
        await conn.execute(insert(agent_facets), rows)


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


def encode_cursor(agent_id: str) -> str:
    """The cursor that continues a listing after ``agent_id``."""
    return encode_cursor_of(agent_id)


def encode_cursor_of(agent_id: str) -> str:
    return base64.urlsafe_b64encode(agent_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not re.fullmatch(AGENT_ID_PATTERN, value):
        raise InvalidCursor("cursor is not one this API returned")
    return value


# Upper bound for a prefix range: sorts after every string starting with the prefix.
_MAX_CHAR = "\U0010ffff"


def search_statement(query: AgentQuery) -> Select[Any]:
    """The page of agents ``query`` asks for, in id order, every filter
    answered from the facet index (`registry.store.SqlAgentStore.search_with_cards`)."""
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
    statement = select(*RECORD_COLUMNS)
    order = agents.c.id
    if exact:
        kind, value = exact.pop(0)
        driver = agent_facets.alias("driver")
        statement = statement.join_from(agents, driver, driver.c.agent_id == agents.c.id).where(
            driver.c.kind == kind, driver.c.value == value
        )
        order = driver.c.agent_id
    for kind, value in exact:
        statement = statement.where(has_facet(kind, agent_facets.c.value == value))
    # Every word of the query must begin a word of the card. Without an
    # exact filter the longest word (likely the rarest) drives, through
    # the index, so a query that matches nothing reads almost nothing.
    words = sorted(search_words(query.q or ""), key=lambda w: (-len(w), w))
    for position, word in enumerate(words):
        prefix = (agent_facets.c.value >= word) & (agent_facets.c.value < word + _MAX_CHAR)
        if position == 0 and order is agents.c.id:
            driving = select(agent_facets.c.agent_id).where(agent_facets.c.kind == "word", prefix)
            statement = statement.where(agents.c.id.in_(driving))
        else:
            statement = statement.where(has_facet("word", prefix))
    if query.cursor:
        statement = statement.where(order > decode_cursor(query.cursor))
    return statement.order_by(order).limit(query.limit + 1)
