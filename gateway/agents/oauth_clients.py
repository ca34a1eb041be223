"""Clients registered out of band at an A2A agent's authorization server.

An agent whose card asks for each user's own token (`gateway.agents.consents`)
gets a client the MCP specification's way (2025-11-25, "Client
Registration"): one registered out of band first, else the gateway's Client
ID Metadata Document, else Dynamic Client Registration. A card cannot name
the first -- it is the gateway's, not the agent's -- so an admin sets it
here (`PUT /agents/{id}/oauth-client`), for a vendor that offers neither of
the others. The secret is sealed with the gateway's sealing secret and never
shown; the client is used to connect (the console's round trip), and a
connection keeps the client it was made with for its refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from policies.keys import open_secret, seal_secret
from registry.store import AgentNotFound, is_agent_id
from registry.tables import agent_oauth_clients as table
from registry.tables import agents

SEAL_PURPOSE = "agent-oauth-client-secret"


class OAuthClientSpec(BaseModel):
    """`PUT /agents/{id}/oauth-client`."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(
        min_length=1, max_length=512, pattern=r"^[\x20-\x7e]+$"
    )  # RFC 6749 Appendix A.1: VSCHAR
    client_secret: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="a confidential client's secret (sent by HTTP Basic, RFC 6749 §2.3.1); "
        "stored sealed, never shown",
    )


class OAuthClientInfo(BaseModel):
    """What is shown of it: never the secret."""

    client_id: str
    client_secret: bool  # whether one is kept
    updated_at: datetime


@dataclass(frozen=True)
class ConfiguredClient:
    client_id: str
    client_secret: str | None = field(default=None, repr=False)


class AgentOAuthClients:
    def __init__(self, engine: AsyncEngine, sealing_secret: str | None) -> None:
        self._engine = engine
        self._secret = sealing_secret

    async def put(
        self, agent_id: str, spec: OAuthClientSpec, *, retried: bool = False
    ) -> OAuthClientInfo:
        """Set (or replace) the agent's client; raises `AgentNotFound`."""
        sealed = (
            seal_secret(spec.client_secret.get_secret_value(), self._secret, SEAL_PURPOSE)
            if spec.client_secret is not None
            else None
        )
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(delete(table).where(table.c.agent_id == agent_id))
                await conn.execute(
                    insert(table).values(
                        agent_id=agent_id,
                        client_id=spec.client_id,
                        client_secret_sealed=sealed,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            # Another PUT's row came in between (a retry replaces it), or the
            # agent was removed meanwhile.
            if not retried and await self._agent_exists(agent_id):
                return await self.put(agent_id, spec, retried=True)
            raise AgentNotFound(agent_id) from None
        return OAuthClientInfo(
            client_id=spec.client_id, client_secret=sealed is not None, updated_at=now
        )

    async def _agent_exists(self, agent_id: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(agents.c.id).where(agents.c.id == agent_id))
        return found is not None

    async def _row(self, agent_id: str) -> tuple[str, str | None, datetime] | None:
        if not is_agent_id(agent_id):
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        table.c.client_id, table.c.client_secret_sealed, table.c.updated_at
                    ).where(table.c.agent_id == agent_id)
                )
            ).first()
        return None if row is None else (row[0], row[1], row[2])

    async def info(self, agent_id: str) -> OAuthClientInfo | None:
        row = await self._row(agent_id)
        if row is None:
            return None
        updated = row[2] if row[2].tzinfo else row[2].replace(tzinfo=UTC)
        return OAuthClientInfo(
            client_id=row[0], client_secret=row[1] is not None, updated_at=updated
        )

    async def get(self, agent_id: str) -> ConfiguredClient | None:
        """The client, its secret opened. Raises `KeySealError` if it cannot be."""
        row = await self._row(agent_id)
        if row is None:
            return None
        secret = open_secret(row[1], self._secret, SEAL_PURPOSE) if row[1] is not None else None
        return ConfiguredClient(row[0], secret)

    async def delete(self, agent_id: str) -> bool:
        if not is_agent_id(agent_id):
            return False
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(table).where(table.c.agent_id == agent_id))
        return bool(result.rowcount)
