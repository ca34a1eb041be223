"""Migration 0026 (connections at agents) both ways, on both databases: an
agent's connection can be stored once the foreign key to `mcp_servers` is
gone; going back to 0025 drops what cannot live under that key and keeps
the rest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Connection, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import db
from gateway.storage.tables import upstream_connections
from registry.tables import mcp_servers

SECRET = "a-sealing-secret-for-the-migration-test-000"


def _connection(upstream: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": f"conn-{upstream}",
        "subject": "alice",
        "issuer": "idp",
        "upstream": upstream,
        "tokens": "sealed",
        "authorization_server": "https://as.example",
        "token_endpoint": "https://as.example/token",
        "client": "sealed",
        "version": 1,
        "created_at": now,
        "refreshed_at": now,
    }


def _downgrade(connection: Connection, revision: str) -> None:
    config = db.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def _upstreams(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(upstream_connections.c.upstream))
        return sorted(row[0] for row in rows)


async def test_connections_at_agents_and_back(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with db.migrated(url, SECRET) as engine:
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                insert(mcp_servers).values(
                    id="notes",
                    name="notes",
                    transport="http",
                    url="https://mcp.example/mcp",
                    resource="https://mcp.example/mcp",
                    credential={"type": "user_oauth"},
                    registered_by="admin",
                    trusted_registrant=True,
                    health_status="unknown",
                    registered_at=now,
                    updated_at=now,
                )
            )
            # An agent's id is no MCP server's: stored all the same.
            for upstream in ("notes", "crm-agent"):
                await conn.execute(insert(upstream_connections).values(**_connection(upstream)))
        assert await _upstreams(engine) == ["crm-agent", "notes"]
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0025_upstream_connections")
        assert await _upstreams(engine) == ["notes"]
        await db.upgrade(engine, SECRET)  # and up again
        assert await _upstreams(engine) == ["notes"]
