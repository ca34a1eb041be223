"""State kept under a key that is not canonical (written before entity keys
were canonicalised, issue 32) moves to the canonical key at start-up, on
SQLite, PostgreSQL and Redis: merged with what the canonical key keeps (the
later end; a budget's counts added), spent rows left alone, idempotent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import anyio
import pytest
import redis

from gateway.delegation.coordination import StateRow, Store
from gateway.delegation.coordination_redis import RedisStore, redis_key
from gateway.delegation.coordination_sql import SqlStore
from gateway.delegation.deferrals import canonicalise_waiting
from gateway.storage.db import create_engine
from gateway.storage.tables import coordination_deferrals, coordination_state
from policies.entity_keys import canonical_key
from tests.support.databases import coordination_backend
from tests.support.services import local_redis

REDIS = local_redis(2)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str | None]]:
    with coordination_backend(request.param, tmp_path_factory.mktemp("rekey"), REDIS) as made:
        yield made


def _row(rule: str, key: str, kind: str, until: float, count: int = 0) -> StateRow:
    return StateRow(
        rule=rule,
        key=key,
        slot=0,
        kind=kind,
        entity="customer",
        until=until,
        opened_at=until - 3600,
        count=count,
        holder=None,
        subject="alice",
        agent="support",
        action="escalate",
        trace_id=None,
    )


def _fold(entity: str, key: str) -> str:
    return canonical_key(key)


def test_old_spellings_move_to_the_canonical_key_and_merge(backend: tuple[str, str | None]) -> None:
    database, redis_url = backend
    now = time.time()
    prefix = uuid.uuid4().hex[:6].upper()
    rows = [
        _row("hold", f"{prefix}-A", "hold", now + 100),
        _row("hold", f" {prefix.lower()}-a", "hold", now + 500),  # the later end wins
        _row("cap", f"{prefix}-B", "budget", now + 900, count=2),
        _row("cap", f"{prefix.lower()}-b", "budget", now + 900, count=1),  # counts add up
        _row("hold", f"{prefix}-SPENT", "hold", now - 1),  # spent: left alone
        _row("hold", f"{prefix.lower()}-c", "hold", now + 100),  # canonical already
    ]

    async def play() -> tuple[list[StateRow], int, int]:
        engine = create_engine(database)
        store: Store = RedisStore(redis_url) if redis_url else SqlStore(engine)
        try:
            await _write(engine, redis_url, rows)
            moved = await store.rekey(_fold, now)
            again = await store.rekey(_fold, now)
            return await store.rows(None, None, now), moved, again
        finally:
            await store.aclose()
            await engine.dispose()

    live, moved, again = anyio.run(play)
    ours = {(r.rule, r.key): r for r in live if r.key.lower().startswith(prefix.lower())}
    low = prefix.lower()
    assert set(ours) == {("hold", f"{low}-a"), ("cap", f"{low}-b"), ("hold", f"{low}-c")}
    assert ours[("hold", f"{low}-a")].until == pytest.approx(now + 500)
    assert ours[("cap", f"{low}-b")].count == 3
    assert moved == 3  # "-A", " -a" and "-B" (merged into "-b"), not the spent one
    assert again == 0


async def _write(engine: object, redis_url: str | None, rows: list[StateRow]) -> None:
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        for row in rows:
            name = redis_key(row.rule, row.slot, row.key)
            fields = {k: repr(v) if isinstance(v, float) else v for k, v in vars(row).items()}
            client.hset(name, mapping={k: v for k, v in fields.items() if v is not None})
            client.pexpireat(name, int(max(row.until, time.time() + 1) * 1000))
        return
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        for row in rows:
            await conn.execute(coordination_state.insert().values(**vars(row)))


def test_waiting_deferrals_move_to_the_canonical_key(backend: tuple[str, str | None]) -> None:
    database, redis_url = backend
    if redis_url:
        pytest.skip("deferrals are kept in the database whatever the rules' store")

    async def play() -> dict[str, str]:
        engine = create_engine(database)
        try:
            async with engine.begin() as conn:
                for approval_id, key, state in (
                    ("d1", "CU-9", "waiting"),
                    ("d2", "\uff23U-9", "waiting"),
                    ("d3", "CU-9", "released"),  # finished: history stays as it was
                ):
                    await conn.execute(
                        coordination_deferrals.insert().values(
                            approval_id=approval_id,
                            rule="r",
                            key=key,
                            entity="customer",
                            kind="hold",
                            rank=0,
                            created_at=time.time(),
                            expires_at=None,
                            state=state,
                        )
                    )
            assert await canonicalise_waiting(engine, _fold) == 2
            assert await canonicalise_waiting(engine, _fold) == 0
            async with engine.connect() as conn:
                found = await conn.execute(
                    coordination_deferrals.select().with_only_columns(
                        coordination_deferrals.c.approval_id, coordination_deferrals.c.key
                    )
                )
                return {a: k for a, k in found.all()}
        finally:
            await engine.dispose()

    assert anyio.run(play) == {"d1": "cu-9", "d2": "cu-9", "d3": "CU-9"}
