"""The pool pings a PostgreSQL connection only after it sat idle
(`gateway.storage.db._ping_when_idle`), against the local server: its
backend is ended from another session, as a restart or a cut would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import db
from tests.support.waiting import wait_for_async, wait_for_awaited

pytestmark = pytest.mark.postgres


@contextlib.asynccontextmanager
async def _pool_whose_connection_was_ended(url: str) -> AsyncIterator[tuple[AsyncEngine, int]]:
    """The gateway's engine on ``url`` with one pooled connection, whose
    backend was then ended from a session outside the pool (and is gone);
    the engine and that backend's pid."""
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        other = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid) is True

            async def gone() -> bool:
                query = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
                return not await other.fetchval(query, pid)

            await wait_for_awaited(gone, seconds=5, every=0.01, what=f"backend {pid} ended")
        finally:
            await other.close()
        yield engine, pid
    finally:
        await engine.dispose()


async def test_a_connection_that_sat_idle_and_died_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    async with _pool_whose_connection_was_ended(postgres_url) as (engine, pid):
        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid


async def test_a_connection_back_within_the_window_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The price of the saved round trip: a connection cut within the window
    fails its next statement once (an outage to its caller), then the pool
    replaces it."""
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 3600.0)
    async with _pool_whose_connection_was_ended(postgres_url) as (engine, _pid):
        async with engine.connect() as conn:
            # The driver has seen the close (not a race with the server's socket).
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await wait_for_async(driver.is_closed, seconds=5, every=0.01, what="the close seen")
            with pytest.raises(DBAPIError) as failed:
                await conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
