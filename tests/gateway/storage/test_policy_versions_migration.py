"""Migration 0031 (policy versions) both ways, on both databases: a saved
version, the table gone at 0030 and back empty afterwards, and its unique
`replaces` still refusing a second save over one version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import IntegrityError

from gateway.delegation import policy_versions
from gateway.storage import db
from gateway.storage.tables import policy_versions as table
from policies.policy_file import PolicySource
from policies.tokens import Principal

SECRET = "a-sealing-secret-for-the-migration-test-000"
ADMIN = Principal(subject="ann", issuer="https://idp.example", scopes=frozenset(), client_id="c")


def _downgrade(connection: Connection, revision: str) -> None:
    config = db.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_down_to_0030_and_up_again(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with db.migrated(url, SECRET) as engine:
        source = PolicySource(None)
        text = "agents:\n  sales:\n    allow: false\n"
        saved = await policy_versions.save(
            engine, source, text, source.check(text), policy_versions.DEFAULT_DIGEST, ADMIN
        )
        assert saved.version == 1 and await policy_versions.newest_id(engine) == 1
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0030_audit_export")
            assert "policy_versions" not in await conn.run_sync(_tables)
        await db.upgrade(engine, SECRET)
        assert await policy_versions.newest_id(engine) == 0
        row = {
            "replaces": 0,
            "document": text,
            "digest": saved.digest,
            "author_subject": "ann",
            "author_issuer": "https://idp.example",
            "created_at": datetime.now(UTC),
        }
        async with engine.begin() as conn:
            await conn.execute(table.insert().values(row))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(table.insert().values(row))
