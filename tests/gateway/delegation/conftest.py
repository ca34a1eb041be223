"""Fixtures of the delegation core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import db


@pytest.fixture
async def engine(database_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The gateway's database, migrated: SQLite in the test's directory, or
    the PostgreSQL database of the run's `database_url`."""
    engine = db.create_engine(database_url or f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await db.upgrade(engine)
    yield engine
    await engine.dispose()
