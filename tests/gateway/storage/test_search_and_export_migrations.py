"""Migrations 0029 (tool search) and 0030 (audit export) both ways, on both
databases: down to 0028 and up again, with documents in the search index,
the new tables and columns gone and back, and the index ranking what it
holds again afterwards."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Connection, func, inspect, select

from bench.tool_catalog import tools
from bench.tool_search import documents
from gateway.storage import db
from gateway.storage.audit_tables import audit_export_streams
from registry.tool_index import SqlToolIndex

SECRET = "a-sealing-secret-for-the-migration-test-000"


def _downgrade(connection: Connection, revision: str) -> None:
    config = db.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _columns(connection: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns(table)}


async def test_down_to_0028_and_up_again(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with db.migrated(url, SECRET) as engine:
        index = SqlToolIndex(engine)
        await index.put(documents(tools()[:10]))
        await index.refresh()
        assert await index.search("contact", ["crm__find_contact"], 5)
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0028_mcp_sets")
            tables = await conn.run_sync(_tables)
            assert not {"tool_docs", "audit_export_streams", "audit_dead_letters"} & tables
            assert "tool_search" not in await conn.run_sync(_columns, "mcp_sets")
            assert "writer" not in await conn.run_sync(_columns, "audit_events")
        await db.upgrade(engine, SECRET)
        assert await index.held() == {}
        await index.put(documents(tools()[:10]))
        await index.refresh()
        [(name, _score)] = await index.search("phone", ["crm__find_contact"], 5)
        assert name == "crm__find_contact"
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(audit_export_streams)) == 0
