"""Writes heard as notices (`gateway.storage.bell`), on a real PostgreSQL
database at the schema's head (migration 0040's triggers): every table the
bell knows has its trigger and rings; a write another connection commits
wakes the jobs of its table, a rolled-back one and an agent's health write
do not, and a lost connection is heard again -- with every job woken once,
for what nobody heard meanwhile -- on the one listening engine the bell
made, disposed when it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.storage.bell import TABLES, ChangeBell, Spaced
from registry.tables import agents, mcp_sets
from tests.support.databases import fresh_database
from tests.support.waiting import wait_for_async

pytestmark = pytest.mark.postgres


class Woken:
    def __init__(self) -> None:
        self.by: dict[str, int] = {}

    def waker(self, table: str) -> object:
        def wake() -> None:
            self.by[table] = self.by.get(table, 0) + 1

        return wake


@contextlib.asynccontextmanager
async def listening(engine: AsyncEngine, woken: Woken, *tables: str) -> AsyncIterator[ChangeBell]:
    bell = ChangeBell(engine)
    for table in tables:
        bell.on(table, woken.waker(table))  # type: ignore[arg-type]
    task = asyncio.create_task(bell.run_forever())
    try:
        await wait_for_async(bell.heard, seconds=30, what="the bell listening")
        yield bell
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as made:  # outside the test's loop: it runs one of its own
        yield made


@pytest.fixture
async def database(url: str) -> AsyncIterator[tuple[str, AsyncEngine]]:
    engine = create_async_engine(url)
    try:
        yield url, engine
    finally:
        await engine.dispose()


def a_set(name: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        **{"name": name, "title": name, "description": "", "instructions": ""},
        **{"selection": {}, "created_at": now, "updated_at": now, "updated_by": "test"},
    }


async def test_a_committed_write_wakes_its_tables_jobs_only(
    database: tuple[str, AsyncEngine],
) -> None:
    _, engine = database
    woken = Woken()
    async with listening(engine, woken, "mcp_sets", "mcp_servers"):
        reconnected = dict(woken.by)  # the first listen wakes every job once
        assert reconnected == {"mcp_sets": 1, "mcp_servers": 1}
        async with engine.begin() as conn:
            await conn.execute(insert(mcp_sets).values(a_set("crm")))
        await wait_for_async(lambda: woken.by["mcp_sets"] == 2, what="the set's notice")
        # A write rolled back sends nothing (NOTIFY goes with the commit);
        # a committed one after it is the only one heard.
        with contextlib.suppress(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(insert(mcp_sets).values(a_set("gone")))
                raise RuntimeError("rolled back")
        async with engine.begin() as conn:
            await conn.execute(insert(mcp_sets).values(a_set("kept")))
        await wait_for_async(lambda: woken.by["mcp_sets"] == 3, what="the second set's notice")
        assert woken.by["mcp_sets"] == 3
        assert woken.by["mcp_servers"] == 1


async def test_an_agents_health_write_rings_nothing_its_card_does(
    database: tuple[str, AsyncEngine],
) -> None:
    _, engine = database
    woken = Woken()
    async with listening(engine, woken, "agents", "mcp_sets"):
        async with engine.begin() as conn:
            # No agent row is needed: a statement trigger fires per statement.
            await conn.execute(update(agents).values(health_lease_until=datetime.now(UTC)))
            await conn.execute(insert(mcp_sets).values(a_set("after-health")))
        # Notices arrive in commit order: once the set's is here, the health
        # write's would have been too.
        await wait_for_async(lambda: woken.by["mcp_sets"] == 2, what="the set's notice")
        assert woken.by["agents"] == 1  # the first listen only
        async with engine.begin() as conn:
            await conn.execute(update(agents).values(revision=agents.c.revision + 1))
        await wait_for_async(lambda: woken.by["agents"] == 2, what="the card's notice")


async def test_every_table_of_the_bell_has_its_trigger_and_rings(
    database: tuple[str, AsyncEngine],
) -> None:
    _, engine = database
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname = 'switchboard_changed' AND NOT t.tgisinternal"
            )
        )
        triggered = sorted(str(row[0]) for row in rows)
    assert triggered == sorted(TABLES)
    woken = Woken()
    async with listening(engine, woken, *TABLES):
        assert woken.by == dict.fromkeys(TABLES, 1)  # the first listen
        for table in TABLES:
            # A statement that deletes nothing: a statement trigger still fires.
            async with engine.begin() as conn:
                await conn.execute(text(f"DELETE FROM {table} WHERE false"))  # noqa: S608 - TABLES
            await wait_for_async(lambda: woken.by[table] == 2, what=f"{table}'s notice")  # noqa: B023
        assert woken.by == dict.fromkeys(TABLES, 2)


async def test_a_lost_connection_is_heard_again_and_every_job_looks(
    database: tuple[str, AsyncEngine],
) -> None:
    url, engine = database
    woken = Woken()
    async with listening(engine, woken, "mcp_sets", "mcp_servers") as bell:
        await _terminate_others(url)
        await wait_for_async(lambda: not bell.heard(), what="the loss noticed")
        await wait_for_async(bell.heard, seconds=30, what="the bell listening again")
        assert woken.by == {"mcp_sets": 2, "mcp_servers": 2}


async def test_the_listeners_engine_is_made_once_and_disposed_at_the_end(
    database: tuple[str, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine = database
    made: list[AsyncEngine] = []
    disposed: list[object] = []

    def recorded(*args: Any, **kwargs: Any) -> AsyncEngine:
        listener = create_async_engine(*args, **kwargs)
        event.listen(listener.sync_engine, "engine_disposed", disposed.append)
        made.append(listener)
        return listener

    monkeypatch.setattr("gateway.storage.bell.create_async_engine", recorded)
    monkeypatch.setattr("gateway.storage.bell.RECONNECT_SECONDS", (0.05,))
    async with listening(engine, Woken(), "mcp_sets") as bell:
        for _ in range(2):  # lost twice: listened to three times
            await _terminate_others(url)
            await wait_for_async(lambda: not bell.heard(), what="the loss noticed")
            await wait_for_async(bell.heard, seconds=30, what="the bell listening again")
        assert len(made) == 1 and disposed == []
    assert disposed == [made[0].sync_engine]


async def _terminate_others(url: str) -> None:
    """End every other session on the test's database (the bell's among them)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()


async def test_sqlite_has_no_bell(tmp_path: object) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    bell = ChangeBell(engine)
    await asyncio.wait_for(bell.run_forever(), 5)  # returns at once
    assert not bell.enabled
    assert not bell.heard()
    await engine.dispose()


def test_a_table_without_a_trigger_is_refused() -> None:
    with pytest.raises(ValueError, match="no trigger"):
        ChangeBell(create_async_engine("sqlite+aiosqlite:///x.db")).on("audit_events", lambda: None)


class Deaf(ChangeBell):
    """A bell whose notices never come back, as through a transaction-mode
    pool: its LISTEN is accepted, nothing is delivered."""

    probes = 0

    async def _probe(self) -> None:
        self.probes += 1
        await super()._probe()

    def _heard(self, *_notice: object) -> None:
        return None


async def test_notices_that_never_come_back_are_not_taken_for_heard(
    database: tuple[str, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, engine = database
    monkeypatch.setattr("gateway.storage.bell.PROBE_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr("gateway.storage.bell.RECONNECT_SECONDS", (0.05,))
    bell, woken = Deaf(engine), Woken()
    bell.on("mcp_sets", woken.waker("mcp_sets"))  # type: ignore[arg-type]
    task = asyncio.create_task(bell.run_forever())
    try:
        await wait_for_async(lambda: bell.probes >= 3, what="probes tried again")
        assert not bell.heard()
        assert woken.by == {}  # never listening: nothing to wake for
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_notices_wake_a_job_at_most_once_an_interval() -> None:
    fired: list[float] = []
    wake = Spaced(lambda: fired.append(asyncio.get_running_loop().time()), 0.3)
    wake()
    assert len(fired) == 1  # the first at once
    for _ in range(50):  # a burst of writes: one wake, when the interval is up
        wake()
    assert len(fired) == 1
    await wait_for_async(lambda: len(fired) == 2, what="the burst's one wake")
    assert fired[1] - fired[0] >= 0.29
    await asyncio.sleep(0)  # nothing else was pending
    assert len(fired) == 2
