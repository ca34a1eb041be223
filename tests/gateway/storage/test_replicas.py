"""Which replicas are gone (`gateway.storage.replicas`), as a replica judges
it -- on a real SQLite database, with the replica's clock in the test's hand
and a database outage made by pointing the replica at one it cannot open.

The point: after an outage every other replica's row looks stale, though
those replicas are alive; the first replica back must not take their runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.storage.replicas import ReplicaDirectory, renewal
from gateway.storage.tables import gateway_replicas, metadata

HEARTBEAT, STALE = 10.0, 45.0
RENEWAL = 0.05  # how long a renewal takes, on the replica's clock


class Clock:
    """The replica's clock. A renewal reads it when it starts and when it
    ends: while one is under way (`renewing`), the second read comes
    ``renewal_takes`` later."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.renewal_takes = RENEWAL
        self.reads: int | None = None  # None: no renewal under way

    def __call__(self) -> float:
        if self.reads is not None:
            self.reads += 1
            if self.reads == 2:
                self.now += self.renewal_takes
        return self.now

    @contextlib.contextmanager
    def renewing(self) -> Iterator[None]:
        self.reads = 0
        try:
            yield
        finally:
            self.reads = None


async def _cannot_open() -> Any:
    raise sqlite3.OperationalError("unable to open database file")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AsyncEngine, AsyncEngine]]:
    """A database holding the replicas' rows, and one that cannot be opened."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    # Its connections fail before aiosqlite starts a thread for them: a file
    # in a missing directory did too, but aiosqlite then closes the failed
    # connection's thread without waiting, and once that close ended after
    # its test's event loop (the thread reporting to a closed loop failed
    # the next test in CI).
    away = create_async_engine("sqlite+aiosqlite://", async_creator=_cannot_open)

    async def create() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all, tables=[gateway_replicas])

    asyncio.run(create())
    yield engine, away
    asyncio.run(engine.dispose())


async def seen(engine: AsyncEngine, replica_id: str, seconds_ago: float) -> None:
    """Another replica's row, last renewed ``seconds_ago`` (by the wall clock:
    rows hold times of day)."""
    at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    async with engine.begin() as conn:
        await conn.execute(
            insert(gateway_replicas).values(id=replica_id, url="http://x", seen_at=at)
        )


class Me:
    """This replica: its directory on its clock, renewed by hand."""

    def __init__(self, heartbeat: float = HEARTBEAT, stale: float = STALE) -> None:
        self.clock = Clock()
        self.heartbeat = heartbeat
        self.replicas = ReplicaDirectory(
            "http://me",
            replica_id="me",
            heartbeat_seconds=heartbeat,
            stale_seconds=stale,
            clock=self.clock,
        )

    async def start(self, engine: AsyncEngine, *, steady: bool = False) -> Me:
        """Announced on ``engine`` (the first renewal), then -- ``steady`` --
        renewed at every heartbeat for a whole stale window."""
        with self.clock.renewing():
            await self.replicas.announce(engine)
        if steady:
            await self.beat(int(self.replicas.stale_seconds / self.heartbeat) + 1)
            assert self.replicas.steady()
        return self

    async def renew(self) -> None:
        """One pass of the `replica` job: a renewal (the clock moves on as
        long as it takes)."""
        with self.clock.renewing():
            await self.replicas.renew()

    async def beat(self, times: int = 1, *, late: float = 0.0) -> None:
        """``times`` heartbeats: a heartbeat (and ``late``) after the last
        renewal ended, the next one."""
        for _ in range(times):
            self.clock.now += self.heartbeat + late
            await self.renew()


def test_a_replica_judges_stale_rows_only_once_it_has_renewed_for_a_whole_stale_window(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = world

    async def go() -> None:
        me = await Me().start(engine)
        await seen(engine, "dead", seconds_ago=600)
        await seen(engine, "alive", seconds_ago=1)
        assert not me.replicas.steady()
        assert await me.replicas.gone({"dead", "alive"}) == set()  # just started
        await me.beat(4)  # 40 s of 45
        assert await me.replicas.gone({"dead"}) == set()
        await me.beat()
        assert me.replicas.steady()
        assert await me.replicas.gone({"dead", "alive", "me"}) == {"dead"}

    asyncio.run(go())


def test_a_replica_that_stopped_cleanly_is_gone_at_once(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A clean stop deletes the replica's row: no outage makes a row absent."""
    engine, _ = world

    async def go() -> None:
        me = await Me().start(engine)
        assert not me.replicas.steady()
        assert await me.replicas.gone({"withdrawn", "me"}) == {"withdrawn"}

    asyncio.run(go())


@pytest.mark.parametrize(("heartbeat", "stale"), [(10.0, 20.0), (0.5, 2.0), (10.0, 45.0)])
def test_steady_with_the_tightest_settings_allowed_and_renewals_that_take_time(
    world: tuple[AsyncEngine, AsyncEngine], heartbeat: float, stale: float
) -> None:
    """Stale at two heartbeats (the least the settings take): renewals a
    heartbeat apart, each taking its time, make a steady replica."""
    engine, _ = world

    async def go() -> None:
        me = Me(heartbeat, stale)
        me.clock.renewal_takes = heartbeat / 5
        await me.start(engine)
        await me.beat(int(stale / heartbeat) + 2)
        assert me.replicas.steady()

    asyncio.run(go())


def test_back_from_an_outage_the_others_stale_rows_are_not_taken_for_gone(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, away = world

    async def go() -> None:
        me = await Me().start(engine, steady=True)
        assert me.replicas.steady()
        # The database goes away for a minute: no replica renews its row.
        me.replicas.engine = away
        for _ in range(6):
            me.clock.now += HEARTBEAT
            with pytest.raises(OperationalError):
                await me.renew()
            assert not me.replicas.steady()  # its own renewal failed: not judging
        me.replicas.engine = engine
        # Back: the other replica, alive all along, has not renewed yet.
        await seen(engine, "other", seconds_ago=70)
        await me.beat()
        assert not me.replicas.steady()
        assert await me.replicas.gone({"other"}) == set()
        # Once this replica has renewed for a whole stale window, a row still
        # stale is a replica that is gone.
        await me.beat(5)
        assert await me.replicas.gone({"other"}) == {"other"}

    asyncio.run(go())


def test_a_renewal_that_hangs_then_succeeds_restarts_the_window(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A renewal held up (a database that does not answer, then does) is an
    outage as the others saw it."""
    engine, _ = world

    async def go() -> None:
        me = await Me().start(engine, steady=True)
        await seen(engine, "dead", seconds_ago=600)
        assert await me.replicas.gone({"dead"}) == {"dead"}
        me.clock.renewal_takes = STALE / 2 + 1
        await me.beat()
        assert not me.replicas.steady()
        assert await me.replicas.gone({"dead"}) == set()
        me.clock.renewal_takes = RENEWAL
        await me.beat(5)
        assert await me.replicas.gone({"dead"}) == {"dead"}

    asyncio.run(go())


def test_no_renewal_lately_stops_the_judging(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """The job stopped running (a stalled event loop; a host that slept: the
    clock counts suspended time)."""
    engine, _ = world

    async def go() -> None:
        me = await Me().start(engine, steady=True)
        me.clock.now += HEARTBEAT + STALE / 2 + 1
        assert not me.replicas.steady()

    asyncio.run(go())


def test_a_beat_late_by_less_than_half_the_stale_window_keeps_it_steady(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A loaded machine's late heartbeat is no outage; a later one may be."""
    engine, _ = world

    async def go() -> None:
        me = await Me().start(engine, steady=True)
        await me.beat(late=STALE / 2 - 1)
        assert me.replicas.steady()
        await me.beat(late=STALE / 2 + 1)
        assert not me.replicas.steady()

    asyncio.run(go())


def test_a_renewal_reads_the_others_and_tells_when_they_move(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Alone while no other row was renewed lately (issue 57: what only
    another replica changes is looked for rarely then); told when another
    row comes, goes stale or goes (a clean stop), and not told otherwise."""
    engine, away = world

    async def go() -> None:
        me = Me()
        told: list[tuple[frozenset[str], frozenset[str]]] = []
        me.replicas.on_others.append(
            lambda: told.append((me.replicas.others, me.replicas.live_others))
        )
        await me.start(engine)
        assert not me.replicas.alone()  # the rows are read from the second renewal on
        await me.beat()
        assert me.replicas.alone() and told == []
        await seen(engine, "b", seconds_ago=1)
        assert me.replicas.alone()  # not seen until this one's next renewal
        await me.beat()
        assert not me.replicas.alone()
        assert told == [(frozenset({"b"}), frozenset({"b"}))]
        await me.beat()
        assert len(told) == 1  # nothing moved
        async with engine.begin() as conn:  # b's row not renewed for a stale window
            await conn.execute(
                update(gateway_replicas).values(seen_at=datetime.now(UTC) - timedelta(minutes=5))
            )
        await me.beat()
        assert me.replicas.alone()
        assert told[-1] == (frozenset({"b"}), frozenset())
        async with engine.begin() as conn:  # b's row goes: it stopped cleanly
            await conn.execute(delete(gateway_replicas).where(gateway_replicas.c.id == "b"))
        await me.beat()
        assert told[-1] == (frozenset(), frozenset()) and len(told) == 3
        # Its own renewals failing, a replica does not know who runs.
        me.replicas.engine = away
        me.clock.now += HEARTBEAT
        with pytest.raises(OperationalError):
            await me.renew()
        assert not me.replicas.alone()
        me.replicas.engine = engine
        await me.beat()  # back, on time again: alone
        assert me.replicas.alone()

    asyncio.run(go())


async def test_one_renewal_writes_new_rows_and_renews_those_there(engine: AsyncEngine) -> None:
    """`renewal`, the one statement that writes replicas' rows (a replica's
    own, and those `bench.idle` keeps for replicas it stands in for), on
    both databases."""
    then = datetime.now(UTC) - timedelta(minutes=5)
    async with engine.begin() as conn:
        first = [{"id": "a", "url": "http://a:1", "seen_at": then}]
        await conn.execute(renewal(engine.dialect.name, first))
    now = datetime.now(UTC)
    rows = [
        {"id": "a", "url": "http://a:2", "seen_at": now},
        {"id": "b", "url": "http://b:1", "seen_at": now},
    ]
    async with engine.begin() as conn:
        await conn.execute(renewal(engine.dialect.name, rows))
        found = (await conn.execute(select(gateway_replicas))).all()
    aware = {r.id: r.seen_at if r.seen_at.tzinfo else r.seen_at.replace(tzinfo=UTC) for r in found}
    assert {r.id: (r.url, aware[r.id]) for r in found} == {
        "a": ("http://a:2", now),
        "b": ("http://b:1", now),
    }
