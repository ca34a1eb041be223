"""Applying one MCP server's tool listing to the store, and naming new tools.

`sync` runs inside the caller's transaction (`SqlMcpStore.create` for a
registration, `SqlMcpStore.sync_tools` for every later listing): new tools
are stored and named, changed ones keep their name and lose their approval
(quarantine), vanished ones are marked unavailable.

A new tool's name follows `registry.mcp_names`: its own name on a server
registered with ``prefix_tools: false`` when that is valid, not reserved and
free, else ``{server}__{tool}`` -- unless another target holds that (a row
stored before names were checked, an agent's skill): then a longer, hashed
form of the server's own. Where the tool does not get the name it would
have had, registration is refused (`NameReserved`, `NameConflict`); a
later listing cannot be refused, so the tool is kept out instead: stored
under the server's own form, flagged ``name-conflict`` with the reason, and
never approved on sight.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.mcp_names import (
    NameConflict,
    NameReserved,
    Refusal,
    is_plain,
    namespaced_name,
    natural_name,
    reserved,
    withheld,
)
from registry.mcp_tool_writes import Writes, approved, name_flag, new_row
from registry.mcp_tools import pinned_definition, screen_tool, tool_digest
from registry.name_holders import skill_holders, tool_holders
from registry.tables import mcp_servers, mcp_tools

YIELD_EVERY = 100  # tools of a listing between the event loop's other work
MAX_TOOL_NAME = 512
_NAMING_ROUNDS = 8


@dataclass(frozen=True)
class SyncResult:
    added: list[str]
    changed: list[str]
    removed: list[str]
    # New tools that did not get the name they would have had: name -> why.
    kept_out: dict[str, str] = field(default_factory=dict)
    # Definitions rewritten with their approval carried over (an MCP App
    # pinned since it was approved): in none of the lists above.
    rewritten: list[str] = field(default_factory=list)
    # The digest of the listing applied (`listing_digest`), stored with the server.
    listing: str = ""

    @property
    def moved(self) -> bool:
        """Whether any tool's row changed: what an in-memory copy reloads for."""
        return bool(self.added or self.changed or self.removed or self.rewritten)


@dataclass
class _Naming:
    names: dict[str, str] = field(default_factory=dict)  # tool -> the name it gets
    refused: dict[str, Refusal] = field(default_factory=dict)  # refuses a registration
    fell_back: dict[str, str] = field(default_factory=dict)  # own name held: prefixed form

    def kept_out(self) -> dict[str, str]:
        """Each tool kept from its own name (under the name it is given): why."""
        refused = {self.names[tool]: why.reason for tool, why in self.refused.items()}
        return refused | {self.names[tool]: why for tool, why in self.fell_back.items()}


async def sync(
    conn: AsyncConnection,
    server_id: str,
    listed: Sequence[Mapping[str, Any]],
    *,
    auto_approve: bool,
    now: datetime | None = None,
    registering: bool = False,
) -> SyncResult:
    """Apply one complete listing; with ``registering``, a tool that cannot
    have its name refuses the whole registration (nothing is written)."""
    now = now or datetime.now(UTC)
    current, prefix = await _stored(conn, server_id)
    usable = list(_usable(listed))
    new = [str(t["name"]) for t in usable if t["name"] not in current]
    naming = await _name(conn, server_id, new, prefix=prefix is not False)
    if registering and naming.refused:
        _refuse(server_id, naming.refused)
    kept_out = naming.kept_out()
    added: list[str] = []
    changed: list[str] = []
    rewritten: list[str] = []
    seen: set[str] = set()
    digests: dict[str, str] = {}
    writes = Writes(conn)
    for i, tool in enumerate(usable, 1):
        if i % YIELD_EVERY == 0:
            # A probe's listing of 1,000 tools is digested here, on the event
            # loop: its other work runs between every few.
            await asyncio.sleep(0)
        name = str(tool["name"])
        seen.add(name)
        definition = pinned_definition(tool)
        digest = digests[name] = tool_digest(definition)
        row = current.get(name)
        if row is not None and row["digest"] == digest and row["available"]:
            continue  # as stored: nothing to screen or write (a probe's usual listing)
        flags = [f.as_dict() for f in screen_tool(definition)]
        if row is None:
            namespaced = naming.names[name]
            held = None if registering else kept_out.get(namespaced)
            fresh = new_row(server_id, name, namespaced, definition, digest, flags, held, now)
            await writes.add(approved(fresh) if auto_approve and not fresh["flags"] else fresh)
            added.append(namespaced)
        else:
            carried = await _update(writes, server_id, row, definition, digest, flags, now)
            if not carried or not row["available"]:
                (changed if row["available"] else added).append(row["namespaced"])
            else:
                rewritten.append(row["namespaced"])
    await writes.flush()
    removed = await _mark_removed(conn, server_id, current, seen, now)
    listing = listing_digest(digests)
    await _refreshed(conn, server_id, now, listing)
    return SyncResult(added, changed, removed, kept_out, rewritten, listing)


def listing_digest(digests: Mapping[str, str]) -> str:
    """One listing's digest: its tools' names and definitions' digests (in
    name order: a listing in another order is the same listing)."""
    lines = "".join(f"{name}\0{digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(lines.encode()).hexdigest()


async def _refreshed(conn: AsyncConnection, server_id: str, now: datetime, listing: str) -> None:
    await conn.execute(
        update(mcp_servers)
        .where(mcp_servers.c.id == server_id)
        .values(tools_refreshed_at=now, tools_listing=listing)
    )


async def _stored(conn: AsyncConnection, server_id: str) -> tuple[dict[str, Any], bool | None]:
    """The server's stored tools by their own name, and its ``prefix_tools``."""
    # Without the definitions: a probe's listing is compared by digest, and
    # decoding a thousand stored definitions to compare nothing stalls the
    # event loop (`_update` reads the one `_approval_carried` needs).
    columns = [c for c in mcp_tools.c if c.name not in ("definition", "approved_definition")]
    current = {
        row["name"]: row
        for row in (
            await conn.execute(select(*columns).where(mcp_tools.c.server_id == server_id))
        ).mappings()
    }
    prefix = (
        await conn.execute(select(mcp_servers.c.prefix_tools).where(mcp_servers.c.id == server_id))
    ).scalar_one_or_none()
    return current, prefix


async def _update(
    writes: Writes,
    server_id: str,
    row: Any,
    definition: dict[str, Any],
    digest: str,
    flags: list[dict[str, Any]],
    now: datetime,
) -> bool:
    """A tool changed or back: its new definition, quarantined unless its
    approval carries over (returned: whether it did)."""
    name = row["name"]
    why = withheld(server_id, name, row["namespaced"])
    if why is not None:  # stored before names were checked: say why it is not offered
        flags.append(name_flag(why.reason))
    values = {
        "definition": definition,
        "digest": digest,
        "flags": flags,
        "available": True,
        "changed_at": now if row["digest"] != digest else row["changed_at"],
    }
    carried: dict[str, Any] = {}
    if row["approved_digest"] is not None and "_meta" in definition:  # else none carries over
        was = (  # not read by `_stored`
            await writes.conn.execute(
                select(mcp_tools.c.approved_definition).where(
                    mcp_tools.c.server_id == server_id, mcp_tools.c.name == name
                )
            )
        ).scalar_one_or_none()
        carried = _approval_carried({**row, "approved_definition": was}, definition, digest)
    if not carried:
        await writes.change(server_id, name, values)
        return False
    await writes.change_alone(server_id, name, values | carried)
    return True


async def _mark_removed(
    conn: AsyncConnection,
    server_id: str,
    current: Mapping[str, Any],
    seen: set[str],
    now: datetime,
) -> list[str]:
    """The stored tools the listing no longer has: unavailable (their names returned)."""
    removed = [
        row["namespaced"] for name, row in current.items() if name not in seen and row["available"]
    ]
    if removed:
        await conn.execute(
            update(mcp_tools)
            .where(mcp_tools.c.server_id == server_id, mcp_tools.c.namespaced.in_(removed))
            .values(available=False, changed_at=now)
        )
    return removed


def _approval_carried(row: Any, definition: dict[str, Any], digest: str) -> dict[str, Any]:
    """A tool approved before the MCP App it opens was pinned (an older
    gateway): the same approval, when all else is what was approved -- an
    upgrade quarantines nothing. Any other change is no such case."""
    approved = row["approved_definition"]
    if row["approved_digest"] is None or "_meta" not in definition:
        return {}
    if isinstance(approved, dict) and "_meta" in approved:
        return {}
    rest = {k: v for k, v in definition.items() if k != "_meta"}
    if tool_digest(rest) != row["approved_digest"]:
        return {}
    return {"approved_digest": digest, "approved_definition": definition}


async def _name(
    conn: AsyncConnection, server_id: str, tools: Sequence[str], *, prefix: bool
) -> _Naming:
    """The names new ``tools`` of ``server_id`` get, and where one is not the
    name it would have had, why."""
    naming = _Naming()
    if not tools:  # a listing with no new tool: nothing to name, no names to read
        return naming
    taken = set((await conn.execute(select(mcp_tools.c.namespaced))).scalars())
    own: list[str] = []
    for tool in tools:
        if not prefix and is_plain(tool):  # the registrant asked for the tool's own name
            why = reserved(tool)
            if why is not None:
                naming.refused[tool] = Refusal(f"tool {tool!r}: its own name {why}", reserved=True)
            elif tool in taken:
                naming.fell_back[tool] = f"its own name {tool!r} is another server's tool's"
            else:
                naming.names[tool] = tool
                taken.add(tool)
                continue
        own.append(tool)
    # The server's own form, unless another target holds it (its own other
    # tools' names are its own business: a hashed form then, as ever).
    naturals: dict[str, str] = {}
    for tool in own:
        natural = natural_name(server_id, tool)
        if natural is not None and natural in taken:
            naturals[natural] = tool
    for name, holder in (await tool_holders(conn, naturals, besides=server_id)).items():
        naming.refused.setdefault(naturals[name], Refusal(f"{name!r} is {holder}"))
    pending = own
    for _ in range(_NAMING_ROUNDS):
        for tool in pending:
            naming.names[tool] = namespaced_name(server_id, tool, taken)  # read, not copied
            taken.add(naming.names[tool])
        clashes = await skill_holders(conn, [naming.names[t] for t in pending])
        pending = [t for t in pending if naming.names[t] in clashes]
        for tool in pending:
            name = naming.names[tool]
            naming.refused.setdefault(tool, Refusal(f"{name!r} is {clashes[name]}"))
        if not pending:
            return naming
    raise NameConflict(f"MCP server {server_id}: no free name for {pending}")  # pragma: no cover


def _refuse(server_id: str, refused: Mapping[str, Refusal]) -> None:
    reasons = "; ".join(refusal.reason for _, refusal in sorted(refused.items()))
    text = f"MCP server {server_id}: {reasons} (one name on /mcp means one target)"
    if any(refusal.reserved for refusal in refused.values()):
        hint = "; register it with prefix_tools: true to offer them as {server}__{tool}"
        raise NameReserved(text + hint)
    raise NameConflict(text)


def _usable(listed: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """Tools with a name the gateway can store; the first of duplicate names wins."""
    names: set[str] = set()
    for tool in listed:
        name = tool.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_TOOL_NAME or "\x00" in name:
            continue
        if name in names:
            continue
        names.add(name)
        yield tool
