"""How one listing's tool rows are written (`registry.mcp_sync`): a new
tool's row, approved on sight or not, and the batches they go in."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.tables import mcp_tools

TRUST_ON_FIRST_USE: Final = "trust-on-first-use"
NAME_FLAG: Final = "name-conflict"
BATCH: Final = 100  # rows per statement
# What a changed tool's row sets, in a batch (`Writes.change`).
CHANGED: Final = frozenset({"definition", "digest", "flags", "available", "changed_at"})


def new_row(
    server_id: str,
    name: str,
    namespaced: str,
    definition: dict[str, Any],
    digest: str,
    flags: list[dict[str, Any]],
    held: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A new tool's row, not approved; ``held``: why a later listing's new
    tool did not get its own name (flagged: pending until an admin approves)."""
    if held is not None:
        flags.append(name_flag(f"{held}; pending as {namespaced} until an admin approves"))
    return {
        "server_id": server_id,
        "name": name,
        "namespaced": namespaced,
        "definition": definition,
        "digest": digest,
        "flags": flags,
        "available": True,
        "approved_digest": None,
        "approved_definition": None,
        "approved_by": None,
        "approved_at": None,
        "first_seen_at": now,
        "changed_at": now,
    }


def approved(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` approved on sight (trust on first use): what it is, as it is."""
    return row | {
        "approved_digest": row["digest"],
        "approved_definition": row["definition"],
        "approved_by": TRUST_ON_FIRST_USE,
        "approved_at": row["first_seen_at"],
    }


class Writes:
    """A listing's rows, written a batch at a time (the driver's executemany:
    one statement compiled per batch, not one per tool): new tools, and
    changed ones whose approval nothing carries over."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._new: list[dict[str, Any]] = []
        self._changed: list[dict[str, Any]] = []

    async def add(self, row: dict[str, Any]) -> None:
        self._new.append(row)
        if len(self._new) >= BATCH:
            await self.flush()

    async def change(self, server_id: str, name: str, values: dict[str, Any]) -> None:
        # The SET clause is the columns of the batch's first ``values`` (a
        # later row's other column would be dropped silently): all alike.
        assert values.keys() == CHANGED, sorted(values)
        self._changed.append({"key_server": server_id, "key_name": name, **values})
        if len(self._changed) >= BATCH:
            await self.flush()

    async def change_alone(self, server_id: str, name: str, values: dict[str, Any]) -> None:
        """A change of other columns than a batch's (a batch shares its SET clause)."""
        await self.conn.execute(_CHANGE, {"key_server": server_id, "key_name": name, **values})

    async def flush(self) -> None:
        if self._new:
            await self.conn.execute(insert(mcp_tools), self._new)
            self._new = []
        if self._changed:
            await self.conn.execute(_CHANGE, self._changed)
            self._changed = []


_CHANGE = update(mcp_tools).where(
    mcp_tools.c.server_id == bindparam("key_server"), mcp_tools.c.name == bindparam("key_name")
)


def name_flag(reason: str) -> dict[str, str]:
    return {"kind": NAME_FLAG, "field": "name", "detail": f"kept out: {reason}"}
