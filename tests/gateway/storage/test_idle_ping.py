"""The pool pings a PostgreSQL connection only after it sat idle
(`gateway.storage.db._ping_when_idle`), against the local server: its
backend is ended from another session, as a restart or a cut would."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import db

pytestmark = pytest.mark.postgres


async def _backend_of_a_pooled_connection(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _end(url: str, pid: int) -> None:
    """The backend ended from a session outside the pool, and gone."""
    other = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid) is True
        for _ in range(500):  # ends within milliseconds: bounded, not timed
            if not await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backend {pid} did not end")
    finally:
        await other.close()


async def test_a_connection_that_sat_idle_and_died_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    engine = db.create_engine(postgres_url)
    try:
        pid = await _backend_of_a_pooled_connection(engine)
        await _end(postgres_url, pid)
        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await engine.dispose()


async def test_a_connection_back_within_the_window_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The price of the saved round trip: a connection cut within the window
    fails its next statement once (an outage to its caller), then the pool
    replaces it."""
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 3600.0)
    engine = db.create_engine(postgres_url)
    try:
        pid = await _backend_of_a_pooled_connection(engine)
        await _end(postgres_url, pid)
        async with engine.connect() as conn:
            # The driver has seen the close (not a race with the server's socket).
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            for _ in range(500):
                if driver.is_closed():
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(DBAPIError) as failed:
                await conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
