"""The targets of delegated calls, kept for a moment: every call needs the
agent's record and card, and reading them is a database round trip."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from policies.policy import Target
from registry.models import AgentRecord
from registry.store import AgentNotFound, SqlAgentStore

TARGET_CACHE_SECONDS = 1.0
Found = tuple[AgentRecord, dict[str, Any], Target]


class TargetCache:
    """A change made on any replica (refresh, delete) is seen within
    TARGET_CACHE_SECONDS."""

    def __init__(self, agents: SqlAgentStore) -> None:
        self.agents = agents
        self._targets: dict[str, tuple[float, Found]] = {}
        self._loading: dict[str, asyncio.Future[Found]] = {}

    async def get(self, agent_id: str) -> tuple[AgentRecord, dict[str, Any], Target]:
        # Every call needs the agent's record and card; reading them is a
        # database round trip, so they are kept for a moment. A change made on
        # any replica (refresh, delete) is seen within TARGET_CACHE_SECONDS.
        cached = self._targets.get(agent_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # One read per expiry, however many calls arrive meanwhile: under load
        # every concurrent call would otherwise miss at once and each query.
        loading = self._loading.get(agent_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load_target(agent_id))
            self._loading[agent_id] = loading
            loading.add_done_callback(lambda done: self._loaded(agent_id, done))
        return await asyncio.shield(loading)

    def _loaded(self, agent_id: str, done: asyncio.Future[Any]) -> None:
        self._loading.pop(agent_id, None)
        if not done.cancelled():
            done.exception()  # retrieved here: every waiter may have gone away

    async def _load_target(self, agent_id: str) -> tuple[AgentRecord, dict[str, Any], Target]:
        found = await self.agents.get_with_card(agent_id)
        if found is None:
            self._targets.pop(agent_id, None)
            raise AgentNotFound(agent_id)
        record, card = found
        target = (record, card, Target.from_card(agent_id, card))
        if len(self._targets) > 10_000:
            self._targets.clear()
        self._targets[agent_id] = (time.monotonic() + TARGET_CACHE_SECONDS, target)
        return target
