"""The statement runner on PostgreSQL (`gateway.storage.statements`): a
read goes without BEGIN and COMMIT where the server's default isolation is
READ COMMITTED and keeps its transaction under a stricter one; a write is
always one transaction; a driver's error is raised as SQLAlchemy raises it
(`gateway.storage.cursor_sql`), a lost connection replaced; the pool keeps
the connections it opened (`gateway.storage.db.POSTGRES_POOL_SIZE`),
against the local server."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.storage import db
from gateway.storage.outages import outage_of
from gateway.storage.statements import Sql, statement_runner
from tests.support.waiting import wait_for_awaited

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


async def test_a_refused_row_is_sqlalchemys_integrity_error_and_stores_nothing(
    postgres_url: str,
) -> None:
    engine = db.create_engine(postgres_url)
    runner = statement_runner(engine)
    insert = "INSERT INTO flows (id, version, name, document, digest, created_by, created_at,"
    values = " updated_at) VALUES (:id, 1, 'n', '{}', 'd', 'me', now(), now())"

    def add(sql: Sql) -> None:
        sql.run(insert + values, {"id": "twice"})

    def add_twice(sql: Sql) -> None:
        sql.run(insert + values, {"id": "twice"})
        sql.run(insert + values, {"id": "twice"})

    def count(sql: Sql) -> int:
        return int(sql.rows("SELECT count(*) FROM flows WHERE id = :id", {"id": "twice"})[0][0])

    try:
        with pytest.raises(IntegrityError) as refused:
            await runner(add_twice)
        assert "duplicate key" in str(refused.value)
        assert outage_of(refused.value) is None  # the data's fault, not an outage
        assert await runner.read(count) == 0
        await runner(add)
        assert await runner.read(count) == 1
    finally:
        await runner.aclose()
        await engine.dispose()


async def test_a_connection_lost_mid_operation_is_an_outage_and_replaced(
    postgres_url: str,
) -> None:
    engine = db.create_engine(postgres_url)
    runner = statement_runner(engine)

    def backend(sql: Sql) -> int:
        return int(sql.rows("SELECT pg_backend_pid()", {})[0][0])

    def end_own_backend(sql: Sql) -> None:
        sql.rows("SELECT pg_terminate_backend(pg_backend_pid())", {})

    try:
        before = await runner(backend)
        with pytest.raises(DBAPIError) as lost:
            await runner(end_own_backend)
        assert lost.value.connection_invalidated
        outage = outage_of(lost.value)
        assert outage is not None and outage.dependency == "database"
        assert await runner(backend) != before
        assert await runner.read(backend) != before
    finally:
        await runner.aclose()
        await engine.dispose()


async def test_an_operation_cancelled_anywhere_loses_no_later_write(postgres_url: str) -> None:
    """Cancelled at any point (before, during or after its BEGIN), an
    operation's connection is not pooled again in a state the next one would
    inherit: each later write is committed and seen from another session,
    and no backend is left idle in a transaction."""
    engine = create_async_engine(postgres_url, pool_size=1, max_overflow=0)
    runner = statement_runner(engine)
    other = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    await other.execute("CREATE TABLE cancelled (x int)")

    def insert(sql: Sql, x: int) -> None:
        sql.run("INSERT INTO cancelled (x) VALUES (:x)", {"x": x})
        sql.rows("SELECT count(*) FROM cancelled", {})

    try:
        unseen = []
        for i in range(150):
            started = asyncio.ensure_future(runner(insert, -1))
            await asyncio.sleep((i % 15) * 0.0001)
            started.cancel()
            with contextlib.suppress(BaseException):
                await started
            await runner(insert, i)
            if not await other.fetchval("SELECT count(*) FROM cancelled WHERE x = $1", i):
                unseen.append(i)
        idle = "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"
        assert unseen == []
        assert await other.fetchval(idle + " AND datname = current_database()") == 0
    finally:
        await other.close()
        await runner.aclose()
        await engine.dispose()


async def test_after_a_cut_the_pools_older_connections_are_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every backend of a warm pool ended at once (a proxy restarted; none
    sat idle long enough to be pinged): the first operation fails as an
    outage, the rest go on new connections; and so again once the engine's
    pool was replaced (`dispose`)."""
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 3600.0)
    engine = db.create_engine(postgres_url)
    runner = statement_runner(engine)
    other = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))

    def hold(sql: Sql) -> int:
        sql.rows("SELECT pg_sleep(0.02)", {})
        return int(sql.rows("SELECT pg_backend_pid()", {})[0][0])

    try:
        for _ in ("the first pool", "the pool after dispose"):
            warm = set(await asyncio.gather(*(runner(hold) for _ in range(10))))
            ended = (
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = ANY($1)"
            )
            assert await other.fetchval(ended, list(warm)) == len(warm)

            async def all_gone(pids: set[int] = warm) -> bool:
                query = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)"
                return not await other.fetchval(query, list(pids))

            await wait_for_awaited(all_gone, seconds=5, every=0.01, what="the backends ended")
            with pytest.raises(DBAPIError) as first:
                await runner(hold)
            assert first.value.connection_invalidated
            assert outage_of(first.value) is not None
            after = [await runner(hold) for _ in range(9)]
            assert not set(after) & warm
            await engine.dispose()
    finally:
        await other.close()
        await runner.aclose()
        await engine.dispose()


async def test_a_statement_cancelled_twice_while_it_waits_leaves_no_backend(
    postgres_url: str,
) -> None:
    """Cancelled twice in a row (as anyio's cancel scopes do) while it waits
    for a row lock another session holds, an operation's backend ends once
    its connection is closed, not when the lock is released."""
    engine = db.create_engine(postgres_url)
    runner = statement_runner(engine)
    plain = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    other = await asyncpg.connect(plain)
    holder = await asyncpg.connect(plain)
    await other.execute(
        "CREATE TABLE locked (id int PRIMARY KEY, x int); INSERT INTO locked VALUES (1, 0)"
    )
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )

    def update(sql: Sql) -> None:
        sql.run("UPDATE locked SET x = x + 1 WHERE id = 1", {})

    try:
        async with holder.transaction():
            await holder.execute("SELECT x FROM locked WHERE id = 1 FOR UPDATE")
            blocked = asyncio.ensure_future(runner(update))

            async def seen_waiting() -> bool:
                return bool(await other.fetchval(waiting))

            await wait_for_awaited(seen_waiting, what="the update waiting for the row lock")
            blocked.cancel()
            await asyncio.sleep(0)
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked

            async def none_waiting() -> bool:
                return bool(await other.fetchval(waiting) == 0)

            # Within the check's interval (1 s), the lock still held.
            await wait_for_awaited(none_waiting, seconds=10, what="the orphaned backend gone")
        assert await other.fetchval("SELECT x FROM locked WHERE id = 1") == 0
        assert await runner(lambda sql: sql.rows("SHOW client_connection_check_interval", {})) == [
            ("1s",)
        ]
    finally:
        await holder.close()
        await other.close()
        await runner.aclose()
        await engine.dispose()
