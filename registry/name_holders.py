"""Who holds a name on `/mcp`, as the registry's tables say (`registry.mcp_names`).

Read inside the transaction that is about to give names out, so a
registration sees what the database holds when it writes:

* `tool_holders`: federated tools, by the name each is stored under;
* `skill_holders`: agents' skills (``{agent}__{skill}``), from the stored
  cards of only the agents that could own the names asked about;
* `refuse_agent_names`: an agent whose id is reserved, or one of whose
  skills would be offered under a name a stored tool holds;
* `lock_names`: one lock for everything that gives out ids (agents and MCP
  servers share one id space), so two registrations cannot both find an id
  free and both take it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import exists, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.cards import card_skills
from registry.mcp_names import (
    NameConflict,
    cut_hashed,
    gateways,
    owner_of,
    reserved_id,
    skill_tool_name,
)
from registry.tables import agents, mcp_servers, mcp_tools

# pg_advisory_xact_lock key: "switchboard ids" (any constant other code does not use).
_ID_SPACE_LOCK = 0x5B1D_5BAC


async def lock_names(conn: AsyncConnection) -> None:
    """Serialise id-giving transactions (PostgreSQL; SQLite writes are serial)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ID_SPACE_LOCK})


async def taken_by_mcp_server(conn: AsyncConnection, target_id: str, resource: str | None) -> bool:
    """Whether an MCP server has the id (or, given, the resource: a token audience)."""
    taken = mcp_servers.c.id == target_id
    if resource is not None:
        taken = or_(taken, mcp_servers.c.resource == resource)
    return await conn.scalar(select(exists().where(taken))) is True


async def tool_holders(
    conn: AsyncConnection, names: Collection[str], *, besides: str | None = None
) -> dict[str, str]:
    """The stored tools (of servers other than ``besides``) holding any of
    ``names``: name -> who holds it."""
    if not names:
        return {}
    query = select(mcp_tools.c.server_id, mcp_tools.c.name, mcp_tools.c.namespaced).where(
        mcp_tools.c.namespaced.in_(list(names))
    )
    if besides is not None:
        query = query.where(mcp_tools.c.server_id != besides)
    rows = await conn.execute(query)
    return {row.namespaced: f"MCP server {row.server_id}'s tool {row.name!r}" for row in rows}


async def skill_holders(conn: AsyncConnection, names: Collection[str]) -> dict[str, str]:
    """The agents' skills offered under any of ``names``: name -> whose."""
    wanted = set(names)
    ids = {owner for name in wanted if (owner := owner_of(name)) is not None}
    starts = {name[: name.rindex("_")] for name in wanted if cut_hashed(name)}
    if not ids and not starts:
        return {}
    where = or_(
        agents.c.id.in_(sorted(ids)), *(agents.c.id.startswith(s, autoescape=True) for s in starts)
    )
    found: dict[str, str] = {}
    for row in await conn.execute(select(agents.c.id, agents.c.card).where(where)):
        for skill in card_skills(row.card or {}):
            name = skill_tool_name(row.id, skill["id"])
            if name in wanted:
                found[name] = f"agent {row.id}'s skill {skill['id']!r}"
    return found


async def holders(conn: AsyncConnection, names: Collection[str]) -> dict[str, str]:
    """Everyone holding any of ``names``: the gateway, stored tools, agents' skills."""
    found = {name: "the gateway's" for name in names if gateways(name)}
    found |= await tool_holders(conn, names)
    found |= await skill_holders(conn, [n for n in names if n not in found])
    return found


async def refuse_agent_names(
    conn: AsyncConnection, agent_id: str, skill_ids: Iterable[str]
) -> None:
    """Raise `NameReserved` / `NameConflict` when the agent's id is reserved,
    or a stored tool holds a name one of its skills would be offered under."""
    refusal = reserved_id(agent_id)
    if refusal is not None:
        raise refusal.error(f"agent {agent_id}")
    skills = {skill_tool_name(agent_id, skill): skill for skill in skill_ids}
    held = await tool_holders(conn, skills)
    if held:
        clashes = "; ".join(
            f"skill {skills[name]!r} would be {name!r}, which is {holder}"
            for name, holder in sorted(held.items())
        )
        raise NameConflict(
            f"agent {agent_id}: {clashes} on /mcp (one name means one target: remove "
            "that server first, or register the agent under another id)"
        )
