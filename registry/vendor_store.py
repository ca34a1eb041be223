"""Storage of gateway-run agents: the card in `agents`, the upstream in `vendor_agents`.

Both rows are written in one transaction (`SqlAgentStore.create(also=...)`),
and removed together by `SqlAgentStore.delete`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registry.models import AgentRecord
from registry.store import NewAgent, SqlAgentStore, is_agent_id
from registry.tables import vendor_agents
from registry.vendor_models import VendorConfig


@dataclass(frozen=True)
class StoredVendorAgent:
    agent_id: str
    config: VendorConfig
    api_key_sealed: str | None
    client_secret_sealed: str | None = None


class SqlVendorStore:
    def __init__(self, engine: AsyncEngine, agents: SqlAgentStore) -> None:
        self._engine = engine
        self._agents = agents

    async def create(
        self,
        agent: NewAgent,
        config: VendorConfig,
        api_key_sealed: str | None,
        client_secret_sealed: str | None = None,
    ) -> AgentRecord:
        async def vendor_row(conn: AsyncConnection) -> None:
            await conn.execute(
                insert(vendor_agents).values(
                    agent_id=agent.id,
                    kind=config.upstream.type,
                    config=config.model_dump(mode="json"),
                    api_key_sealed=api_key_sealed,
                    client_secret_sealed=client_secret_sealed,
                    registered_at=datetime.now(UTC),
                )
            )

        return await self._agents.create(agent, also=vendor_row)

    async def get(self, agent_id: str) -> StoredVendorAgent | None:
        if not is_agent_id(agent_id):
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        vendor_agents.c.config,
                        vendor_agents.c.api_key_sealed,
                        vendor_agents.c.client_secret_sealed,
                    ).where(vendor_agents.c.agent_id == agent_id)
                )
            ).first()
        if row is None:
            return None
        return StoredVendorAgent(
            agent_id,
            VendorConfig.model_validate(row.config),
            row.api_key_sealed,
            row.client_secret_sealed,
        )
