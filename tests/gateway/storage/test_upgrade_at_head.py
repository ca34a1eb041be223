"""`db.upgrade` on a database at the head reads `alembic_version` and stops:
Alembic is not asked to load the migration scripts (which compiles each
one) only to find nothing to do. Behind the head, it migrates as before."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import db


async def test_at_the_head_alembic_is_not_run(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Alembic ran on a database at the head")

    monkeypatch.setattr(command, "upgrade", refuse)
    await db.upgrade(engine)  # the engine fixture's database is at the head


async def test_behind_the_head_the_migrations_run(unmigrated_engine: AsyncEngine) -> None:
    await db.upgrade(unmigrated_engine)
    async with unmigrated_engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert {version} == db._script_heads()
