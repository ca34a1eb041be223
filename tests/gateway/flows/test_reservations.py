"""A user's budget for a flow, reserved (`gateway.flows.reservations`), on
both databases: a reservation is made only if it fits; a step that runs
again keeps its own; one released, or its run ended, frees what it held;
one past its expiry (a crash no run came back from) counts no more and is
removed; reservations made at once through two stores (two replicas'
connections) never take more than the budget between them; and migration
0037 goes down and up again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import Connection, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.flows.reservations import Hold, Period
from gateway.flows.store import FlowStore
from gateway.storage import db
from gateway.storage.db import create_engine, upgrade
from gateway.storage.flow_tables import flow_reservations

OWNER = ("dana", "https://idp.example")
ALL = Period(None, None)
LIMIT = Decimal("2.00")


def _hold(run_id: str, step_id: str = "s", amount: str = "1.00", seconds: float = 600) -> Hold:
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    return Hold(run_id, step_id, "f", OWNER, Decimal(amount), expires)


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[FlowStore]:
    made = FlowStore(engine)
    yield made
    await made.aclose()


async def test_a_reservation_is_made_only_if_it_fits(store: FlowStore) -> None:
    assert await store.reservations.reserve(_hold("r1"), LIMIT, ALL) is None
    assert await store.reservations.reserve(_hold("r1"), LIMIT, ALL) is None  # the step again: kept
    assert await store.reservations.committed("f", OWNER, ALL) == Decimal("1.00")
    assert await store.reservations.reserve(_hold("r2", amount="1.50"), LIMIT, ALL) == Decimal(
        "1.00"
    )
    assert await store.reservations.reserve(_hold("r2"), LIMIT, ALL) is None
    assert (
        await store.reservations.reserve(_hold("r3", amount="0"), LIMIT, ALL) == LIMIT
    )  # at the limit
    assert await store.reservations.committed("f", ("erin", OWNER[1]), ALL) == 0  # hers are her own


async def test_released_ended_and_lapsed_reservations_free_what_they_held(
    store: FlowStore, engine: AsyncEngine
) -> None:
    assert await store.reservations.reserve(_hold("r1", "a"), LIMIT, ALL) is None
    assert await store.reservations.reserve(_hold("r2", "a"), LIMIT, ALL) is None
    await store.reservations.release("r1", "a")
    assert await store.reservations.committed("f", OWNER, ALL) == Decimal("1.00")
    await store.set_run("r2", state="failed")  # the run ended (its row or not)
    assert await store.reservations.committed("f", OWNER, ALL) == 0

    # A crash left one no run comes back to: it counts until it lapses.
    assert await store.reservations.reserve(_hold("r3"), LIMIT, ALL) is None
    assert await store.reservations.committed("f", OWNER, ALL) == Decimal("1.00")
    # Its expiry brought to a second ago, not waited for (the store reads the
    # wall clock): lapsed.
    async with engine.begin() as conn:
        await conn.execute(
            update(flow_reservations)
            .where(flow_reservations.c.run_id == "r3")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await store.reservations.committed("f", OWNER, ALL) == 0
    assert await store.reservations.reserve(_hold("r4"), LIMIT, ALL) is None
    async with engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(flow_reservations))
    assert left == 1  # the lapsed one removed by the next reservation


async def test_reservations_made_at_once_through_two_stores_fit_the_budget(
    store: FlowStore, engine: AsyncEngine
) -> None:
    second = create_engine(engine.url.render_as_string(hide_password=False))  # another replica's
    other = FlowStore(second)
    try:
        stores = [store, other] * 4
        refused = await asyncio.gather(
            *(s.reservations.reserve(_hold(f"r{i}"), LIMIT, ALL) for i, s in enumerate(stores))
        )
    finally:
        await other.aclose()
        await second.dispose()
    assert sum(1 for r in refused if r is None) == 2
    assert await store.reservations.committed("f", OWNER, ALL) == LIMIT


def _down_to_0036(connection: Connection) -> set[str]:
    config = db.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "0036_approvals_txn")
    return set(inspect(connection).get_table_names())


async def test_migration_0037_down_and_up(store: FlowStore, engine: AsyncEngine) -> None:
    assert await store.reservations.reserve(_hold("r1"), LIMIT, ALL) is None
    async with engine.begin() as conn:
        left = await conn.run_sync(_down_to_0036)
    assert not {"flow_reservations", "flow_budget_locks"} & left
    await upgrade(engine)
    assert await store.reservations.committed("f", OWNER, ALL) == 0
    assert await store.reservations.reserve(_hold("r1"), LIMIT, ALL) is None
