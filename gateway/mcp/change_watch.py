"""Tell this replica's MCP clients of changes made on another replica.

A change made through this replica (a set replaced, a server registered, a
tool approved, an agent's new card) is told to its clients at once
(`ToolListNotifier.changed`). Another replica's clients would learn of it
only by listing again, which a client does when told: so every replica
reads, every `mcp_change_watch_seconds`, what its clients' lists are made
of -- each set's version (``mcp_sets.updated_at``), and a fingerprint of
the catalog (the federated tools' count, latest change, latest approval and
how many are available; the registry's own `SqlAgentStore.fingerprint`) --
and tells:

* the clients of a set whose version moved, or that appeared or went, that
  their lists changed (that set's clients only, as on the replica that
  changed it), once this replica's copy of the set is dropped;
* every client, when the catalog moved, once this replica's copies of the
  federated tools and the registry's listing are dropped.

What this replica changed itself is not told twice: before a notice of its
own goes out, the watch reads again what that notice is about (that set's
version, or the catalog) and takes it as known (`ToolListNotifier.before_send`).
That read comes before the clients are told, so anything it takes as known
is there when they list again; a change that comes later is the next
pass's. A pass is one statement (the catalog's aggregates, each set's version
beside them); a pass that fails
(the database away) is the periodic job's to log, and the next one
compares with the last known.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Integer, cast, func, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.mcp.notify import Kind, ToolListNotifier
from registry.tables import agents, mcp_sets, mcp_tools

Catalog = tuple[object, ...]


@dataclass
class Known:
    sets: dict[str, str] = field(default_factory=dict)
    catalog: Catalog | None = None


class ChangeWatch:
    def __init__(
        self,
        engine: AsyncEngine,
        notifier: ToolListNotifier,
        *,
        set_moved: Callable[[str], None],
        catalog_moved: Callable[[], None],
    ) -> None:
        """``set_moved`` and ``catalog_moved`` drop this replica's copies of
        what moved (`SetCache.changed`, the federation's snapshot, the
        registry's listeners) and tell the clients through the notifier:
        told first, the clients would list again from the old copies."""
        self._engine = engine
        self._notifier = notifier
        self._set_moved = set_moved
        self._catalog_moved = catalog_moved
        self._known: Known | None = None  # None: not read yet (the first pass reads)
        # A pass and a reading of one's own change, one at a time: a pass's
        # older reading must not overwrite what a change of one's own took as known.
        self._reading = asyncio.Lock()
        notifier.before_send.append(self._own_change)

    def knows(self, name: str) -> bool:
        """Whether the set ``name`` is known at its current version (tests)."""
        return self._known is not None and name in self._known.sets

    async def check(self) -> None:
        """One pass: tell what moved since the last known (the periodic job)."""
        async with self._reading:
            sets, catalog = await self._read()
            known, self._known = self._known, Known(sets, catalog)
        if known is None:
            return  # the first reading is the baseline: nothing was listed before it
        for name in sorted(_moved(known.sets, sets)):
            self._set_moved(name)
        if catalog != known.catalog:
            self._catalog_moved()

    async def _own_change(self, kind: Kind, only: str | None) -> None:
        """About to tell of a change this replica made (or relays): what it is
        about is read now and taken as known."""
        async with self._reading:
            known = self._known
            if known is None:
                return
            if only is not None:
                version = (await self._sets([only])).get(only)
                if version is None:
                    known.sets.pop(only, None)
                else:
                    known.sets[only] = version
            elif kind == "tools":
                known.catalog = (await self._read())[1]

    async def _sets(self, names: list[str] | None = None) -> dict[str, str]:
        query = select(mcp_sets.c.name, mcp_sets.c.updated_at)
        if names is not None:
            query = query.where(mcp_sets.c.name.in_(names))
        async with self._engine.connect() as conn:
            return {name: str(at) for name, at in (await conn.execute(query)).all()}

    async def _read(self) -> tuple[dict[str, str], Catalog]:
        """Every set's version, and the catalog's fingerprint: the federated
        tools' count, latest change, latest approval and how many are
        available; the agents' count, latest change and sum of revisions
        (`SqlAgentStore.fingerprint`). One statement: the fingerprint's row
        joined to each set's (or to none)."""
        fingerprint = select(
            *(
                select(column).select_from(table).scalar_subquery().label(f"c{i}")
                for i, (table, column) in enumerate(_FINGERPRINT)
            )
        ).subquery()
        query = select(fingerprint, mcp_sets.c.name, mcp_sets.c.updated_at).select_from(
            fingerprint.outerjoin(mcp_sets, true())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        first = rows[0]
        catalog: Catalog = (
            *(int(first[0] or 0), str(first[1]), str(first[2]), int(first[3] or 0)),
            *(int(first[4] or 0), str(first[5]), int(first[6] or 0)),
        )
        sets = {row[-2]: str(row[-1]) for row in rows if row[-2] is not None}
        return sets, catalog


_FINGERPRINT = (
    (mcp_tools, func.count()),
    (mcp_tools, func.max(mcp_tools.c.changed_at)),
    (mcp_tools, func.max(mcp_tools.c.approved_at)),
    (mcp_tools, func.sum(cast(mcp_tools.c.available, Integer))),
    (agents, func.count()),
    (agents, func.max(agents.c.updated_at)),
    (agents, func.sum(agents.c.revision)),
)


def _moved(before: Mapping[str, str], now: Mapping[str, str]) -> set[str]:
    return {name for name in before.keys() | now.keys() if before.get(name) != now.get(name)}
