"""Credentials registered agents act with at the token endpoint.

One credential per agent; issuing a new one replaces the old (rotation is
"issue, deploy, done"). The client id is the agent id, so the `act` claims
and audit records name agents the way the registry does.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from policies.client_auth import hash_secret, new_client_secret, validate_public_jwks
from registry.store import AgentNotFound, is_agent_id
from registry.tables import agent_credentials, agents, as_utc


class CredentialMethod(enum.StrEnum):
    CLIENT_SECRET = "client_secret"  # noqa: S105 - a method name
    PRIVATE_KEY_JWT = "private_key_jwt"


@dataclass(frozen=True)
class AgentCredential:
    agent_id: str
    method: CredentialMethod
    secret_hash: str | None
    jwks: Mapping[str, Any] | None
    created_at: datetime

    @property
    def client_id(self) -> str:
        return self.agent_id


class SqlCredentialStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def issue_secret(self, agent_id: str) -> str:
        """A new client secret for ``agent_id``; the only time it is ever visible."""
        secret = new_client_secret()
        await self._replace(agent_id, CredentialMethod.CLIENT_SECRET, hash_secret(secret), None)
        return secret

    async def set_jwks(self, agent_id: str, jwks: Any) -> None:
        await self._replace(
            agent_id, CredentialMethod.PRIVATE_KEY_JWT, None, validate_public_jwks(jwks)
        )

    async def get(self, agent_id: str) -> AgentCredential | None:
        if not is_agent_id(agent_id):
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(agent_credentials).where(agent_credentials.c.agent_id == agent_id)
                )
            ).first()
        if row is None:
            return None
        return AgentCredential(
            agent_id=row.agent_id,
            method=CredentialMethod(row.method),
            secret_hash=row.secret_hash,
            jwks=row.jwks,
            created_at=as_utc(row.created_at),
        )

    async def revoke(self, agent_id: str) -> bool:
        if not is_agent_id(agent_id):
            return False
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(agent_credentials).where(agent_credentials.c.agent_id == agent_id)
            )
        return bool(result.rowcount)

    async def _replace(
        self,
        agent_id: str,
        method: CredentialMethod,
        secret_hash: str | None,
        jwks: Mapping[str, Any] | None,
    ) -> None:
        # One transaction: the old credential stops working exactly when the new one starts.
        if not is_agent_id(agent_id):
            raise AgentNotFound(agent_id)
        async with self._engine.begin() as conn:
            if await conn.scalar(select(agents.c.id).where(agents.c.id == agent_id)) is None:
                raise AgentNotFound(agent_id)
            await conn.execute(
                delete(agent_credentials).where(agent_credentials.c.agent_id == agent_id)
            )
            await conn.execute(
                insert(agent_credentials).values(
                    agent_id=agent_id,
                    method=method.value,
                    secret_hash=secret_hash,
                    jwks=dict(jwks) if jwks is not None else None,
                    created_at=datetime.now(UTC),
                )
            )
