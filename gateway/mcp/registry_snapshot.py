"""The registry as the agents' skill tools see it (`gateway.mcp.agent_tools`):
every agent's card, read again only when the registry's fingerprint moved,
and how recently that fingerprint was checked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from registry.cards import card_skills
from registry.mcp_names import skill_tool_name
from registry.store import SqlAgentStore

logger = logging.getLogger(__name__)

# The fingerprint (`SqlAgentStore.fingerprint`) counts and sums over every agent
# row: O(agents) in the database. A listing's first page always asks it, so a
# listing sees every change made before it; a later page may use the snapshot
# found current within this long -- a full listing of 100,000 agents is 300
# pages, and asking per page would make it O(agents x pages) (`bench.scale`). So a
# later page may show, for at most this long plus `STALE_GRACE_SECONDS` (below),
# an agent another replica (or this one, outside `RegistryService`) just
# removed -- a call to it is decided afresh and refused -- as the federation's
# snapshot may (`SNAPSHOT_SECONDS`).
# A change through this replica's registry API ends the reuse at once
# (`changed`, told by `AgentSkillTools.registry_changed`). A tool search is
# answered from that snapshot too: asking per search was half a lexical
# search's CPU (`bench.tool_catalog`).
# Once the check is this old, a later page or a search keeps the snapshot
# for up to `STALE_GRACE_SECONDS` more while the check runs beside it: asked
# in line, the fingerprint's one read waited 60-200 ms on a busy engine (its
# worker thread and the event loop take turns at the interpreter), once a
# second, for whichever searches came then. Past that grace (after an idle
# spell, or checks failing through an outage) they ask in line again.
CONTINUATION_SECONDS = 1.0
STALE_GRACE_SECONDS = 4.0


@dataclass(frozen=True)
class Snapshot:
    """Every agent's card and skill names, as the registry held them at ``fingerprint``."""

    fingerprint: tuple[int, str, int]
    agents: tuple[tuple[str, Mapping[str, Any]], ...]
    names: frozenset[str]


class RegistrySnapshot:
    def __init__(self, agents: Callable[[], SqlAgentStore]) -> None:
        self._agents = agents
        self._snapshot: Snapshot | None = None
        self._checked_until = 0.0  # when the snapshot's fingerprint was last found current, +1 s
        # Raised by each change here: a fingerprint read begun before one must
        # not extend the reuse the change ended (`current`).
        self._changes = 0
        self._told = False  # a change here since the snapshot was last found current
        self._reading = asyncio.Lock()
        self._checking: asyncio.Task[None] | None = None  # the check beside the callers
        self._next_check = 0.0  # no check beside them before this (one a second at most)
        self._check_failed = False

    async def current(self, continuing: bool = False) -> Snapshot:
        snapshot = self._snapshot
        if continuing and snapshot is not None and not self._told:
            now = time.monotonic()
            if now < self._checked_until:
                return snapshot
            if now < self._checked_until + STALE_GRACE_SECONDS:  # checked beside the callers
                self._check_beside(now)
                return snapshot
        return await self._checked()

    def _check_beside(self, now: float) -> None:
        loop = asyncio.get_running_loop()
        checking = self._checking
        # A check of a loop that closed before it ended would never end.
        running = checking is not None and not checking.done() and checking.get_loop() is loop
        if not running and now >= self._next_check:
            self._next_check = now + CONTINUATION_SECONDS
            self._checking = loop.create_task(self._check_quietly())

    async def _check_quietly(self) -> None:
        """`_checked`, its failure logged (the first of a run of them as a
        warning); the snapshot stands meanwhile, within its grace -- a call
        is decided afresh whatever a listing showed."""
        try:
            await self._checked()
        except Exception as error:
            log = logger.debug if self._check_failed else logger.warning
            log("MCP agent skill tools: the registry could not be checked: %r", error)
            self._check_failed = True
        else:
            self._check_failed = False

    async def _checked(self) -> Snapshot:
        """The snapshot, its fingerprint asked now (and the cards read again if it moved)."""
        agents = self._agents()
        checked, changes = time.monotonic(), self._changes
        fingerprint = await agents.fingerprint()
        if self._snapshot is not None and self._snapshot.fingerprint == fingerprint:
            self._found_current(checked, changes)
            return self._snapshot
        async with self._reading:  # one read of the whole registry at a time
            checked, changes = time.monotonic(), self._changes
            fingerprint = await agents.fingerprint()
            if self._snapshot is None or self._snapshot.fingerprint != fingerprint:
                read: list[tuple[str, Mapping[str, Any]]] = []
                names: set[str] = set()
                async for record, card in agents.all_with_cards():
                    read.append((record.id, card))
                    names.update(skill_tool_name(record.id, s["id"]) for s in card_skills(card))
                self._snapshot = Snapshot(fingerprint, tuple(read), frozenset(names))
            self._found_current(checked, changes)
            return self._snapshot

    def _found_current(self, checked: float, changes: int) -> None:
        """The snapshot was current at ``checked``: reusable for
        `CONTINUATION_SECONDS` -- unless a change here came while it was read."""
        if changes == self._changes:
            self._checked_until = checked + CONTINUATION_SECONDS
            self._told = False

    def changed(self) -> None:
        """An agent was registered, refreshed or removed on this replica: the
        next page or search checks the fingerprint again."""
        self._changes += 1
        self._checked_until = 0.0
        self._told = True
