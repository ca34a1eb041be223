"""Which replicas are gone (`gateway.storage.replicas`), as a replica judges
it -- on a real SQLite database, with the replica's clock in the test's hand
and a database outage made by pointing the replica at one it cannot open.

The point: after an outage every other replica's row looks stale, though
those replicas are alive; the first replica back must not take their runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.storage.replicas import ReplicaDirectory
from gateway.storage.tables import gateway_replicas, metadata

HEARTBEAT, STALE = 10.0, 45.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AsyncEngine, AsyncEngine]]:
    """A database holding the replicas' rows, and one that cannot be opened."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    away = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'gw.db'}")

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


def directory(clock: Clock) -> ReplicaDirectory:
    return ReplicaDirectory(
        "http://me", replica_id="me", heartbeat_seconds=HEARTBEAT, stale_seconds=STALE, clock=clock
    )


async def beat(replicas: ReplicaDirectory, clock: Clock, times: int) -> None:
    """``times`` heartbeats: the clock moves on one, then the row is renewed."""
    for _ in range(times):
        clock.now += HEARTBEAT
        await replicas.renew()


def test_a_replica_judges_the_others_only_once_it_has_been_renewing_a_whole_stale_window(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = world

    async def go() -> None:
        clock = Clock()
        replicas = directory(clock)
        await replicas.announce(engine)
        await seen(engine, "dead", seconds_ago=600)
        await seen(engine, "alive", seconds_ago=1)
        assert not replicas.steady()
        assert await replicas.gone({"dead", "alive"}) == set()  # just started
        await beat(replicas, clock, 4)  # 40 s of 45
        assert await replicas.gone({"dead"}) == set()
        await beat(replicas, clock, 1)
        assert replicas.steady()
        assert await replicas.gone({"dead", "alive", "me"}) == {"dead"}

    asyncio.run(go())


def test_back_from_an_outage_the_others_stale_rows_are_not_taken_for_gone(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, away = world

    async def go() -> None:
        clock = Clock()
        replicas = directory(clock)
        await replicas.announce(engine)
        await beat(replicas, clock, 5)
        assert replicas.steady()
        # The database goes away for a minute: no replica renews its row.
        replicas.engine = away
        last_renewed = clock.now
        for _ in range(6):
            clock.now += HEARTBEAT
            with pytest.raises(OperationalError):
                await replicas.renew()
            # Its own renewals stopped: judging no more once that is a gap.
            assert replicas.steady() is (clock.now - last_renewed <= STALE / 2)
        replicas.engine = engine
        # Back: the other replica, alive all along, has not renewed yet.
        await seen(engine, "other", seconds_ago=70)
        clock.now += HEARTBEAT
        await replicas.renew()
        assert not replicas.steady()
        assert await replicas.gone({"other"}) == set()
        # Once this replica has renewed for a whole stale window, a row still
        # stale is a replica that is gone.
        await beat(replicas, clock, 5)
        assert await replicas.gone({"other"}) == {"other"}

    asyncio.run(go())


def test_a_renewal_that_hangs_stops_the_judging(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = world

    async def go() -> None:
        clock = Clock()
        replicas = directory(clock)
        await replicas.announce(engine)
        await beat(replicas, clock, 5)
        await seen(engine, "dead", seconds_ago=600)
        assert await replicas.gone({"dead"}) == {"dead"}
        clock.now += STALE / 2 + 1  # no renewal got through meanwhile
        assert not replicas.steady()
        assert await replicas.gone({"dead"}) == set()

    asyncio.run(go())


def test_a_pause_shorter_than_half_the_stale_window_keeps_it_steady(
    world: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A loaded machine's late heartbeat is no outage."""
    engine, _ = world

    async def go() -> None:
        clock = Clock()
        replicas = directory(clock)
        await replicas.announce(engine)
        await beat(replicas, clock, 5)
        clock.now += STALE / 2 - 1
        await replicas.renew()
        assert replicas.steady()

    asyncio.run(go())
