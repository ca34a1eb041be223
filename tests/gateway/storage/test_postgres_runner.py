"""The statement runner on PostgreSQL (`gateway.storage.statements`): a
read goes without BEGIN and COMMIT where the server's default isolation is
READ COMMITTED and keeps its transaction under a stricter one; a write is
always one transaction; the pool keeps the connections it opened
(`gateway.storage.db.POSTGRES_POOL_SIZE`), against the local server."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.storage import db
from gateway.storage.statements import Sql, statement_runner

pytestmark = pytest.mark.postgres


def _one_snapshot_time(sql: Sql) -> bool:
    """Whether two statements apart in time read the same ``now()``: the
    start of their transaction, the same only when they share one."""
    first: datetime = sql.rows("SELECT now()", {})[0][0]
    sql.rows("SELECT pg_sleep(0.01)", {})
    return bool(first == sql.rows("SELECT now()", {})[0][0])


async def test_a_read_needs_no_transaction_at_read_committed(postgres_url: str) -> None:
    engine = db.create_engine(postgres_url)
    runner = statement_runner(engine)
    try:
        assert await runner.read(_one_snapshot_time) is False
        assert await runner(_one_snapshot_time) is True
    finally:
        await runner.aclose()
        await engine.dispose()


async def test_a_read_keeps_its_transaction_under_a_stricter_default(postgres_url: str) -> None:
    settings = {"default_transaction_isolation": "repeatable read"}
    engine = create_async_engine(postgres_url, connect_args={"server_settings": settings})
    runner = statement_runner(engine)
    try:
        assert await runner.read(_one_snapshot_time) is True
        assert await runner(_one_snapshot_time) is True
    finally:
        await runner.aclose()
        await engine.dispose()


async def test_a_burst_wider_than_the_pool_waits_and_keeps_its_connections(
    postgres_url: str,
) -> None:
    """Twice as many operations at once as the pool holds: each waits its
    turn, and the second burst runs on the very connections of the first
    (an overflow connection was closed at its checkin and opened again at
    the next burst's)."""
    engine = db.create_engine(postgres_url)
    runner = statement_runner(engine)

    def backend(sql: Sql) -> int:
        pid = sql.rows("SELECT pg_backend_pid()", {})[0][0]
        sql.rows("SELECT pg_sleep(0.05)", {})
        return int(pid)

    try:
        burst = 2 * db.POSTGRES_POOL_SIZE
        first = set(await asyncio.gather(*(runner(backend) for _ in range(burst))))
        second = set(await asyncio.gather(*(runner(backend) for _ in range(burst))))
        assert len(first) == db.POSTGRES_POOL_SIZE
        assert second == first
    finally:
        await runner.aclose()
        await engine.dispose()
