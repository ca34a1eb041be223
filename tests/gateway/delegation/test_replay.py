"""gateway.delegation.replay: one-time `jti`s, kept in the database (SQLite and
the local PostgreSQL), so that no Redis restart can make them new again."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation import replay
from gateway.delegation.replay import ReplayCache
from gateway.storage.db import create_engine
from gateway.storage.tables import used_assertions
from policies.client_auth import verify_client_assertion
from policies.keys import ec_public_jwk


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace the replay module's view of the wall clock (and only its view)."""
    fake = Clock()
    monkeypatch.setattr(replay, "time", SimpleNamespace(time=fake.time))
    return fake


async def test_first_use_only_once(engine: AsyncEngine, clock: Clock) -> None:
    cache = ReplayCache(engine)
    assert await cache.first_use("agent:jti-1", clock.now + 60) is True
    assert await cache.first_use("agent:jti-1", clock.now + 60) is False
    assert await cache.first_use("agent:jti-2", clock.now + 60) is True
    assert await cache.first_use("other-agent:jti-1", clock.now + 60) is True


async def test_remembered_until_expiry_then_forgotten(engine: AsyncEngine, clock: Clock) -> None:
    cache = ReplayCache(engine)
    assert await cache.first_use("k", clock.now + 60)
    clock.now += 60.5  # still inside the extra second kept past expiry
    assert not await cache.first_use("k", clock.now + 60)
    clock.now += 1
    assert await cache.first_use("k", clock.now + 60)
    assert not await cache.first_use("k", clock.now + 60)  # and remembered anew


async def test_a_past_expiry_is_still_kept_a_second(engine: AsyncEngine, clock: Clock) -> None:
    cache = ReplayCache(engine)
    assert await cache.first_use("k", clock.now - 100)
    assert await cache.first_use("k", clock.now - 100) is False


async def test_another_process_sees_the_same_ids(engine: AsyncEngine, clock: Clock) -> None:
    """A new cache on the same database (another replica, or this one after a
    restart of anything but the database) remembers what the first accepted."""
    assert await ReplayCache(engine).first_use("k", clock.now + 60)
    again = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        assert await ReplayCache(again).first_use("k", clock.now + 60) is False
    finally:
        await again.dispose()


async def test_concurrent_first_use_has_one_winner(engine: AsyncEngine) -> None:
    replicas = [ReplayCache(engine) for _ in range(5)]
    exp = time.time() + 60
    results = await asyncio.gather(*(r.first_use("race", exp) for r in replicas for _ in range(4)))
    assert results.count(True) == 1 and len(results) == 20


async def test_expired_ids_are_purged(engine: AsyncEngine, clock: Clock) -> None:
    cache = ReplayCache(engine)
    for n in range(3):
        assert await cache.first_use(f"old-{n}", clock.now + 10)
    clock.now += replay.PURGE_SECONDS + 20
    assert await cache.first_use("new", clock.now + 60)
    async with engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(used_assertions))
    assert left == 1


async def test_only_a_digest_is_stored(engine: AsyncEngine, clock: Clock) -> None:
    await ReplayCache(engine).first_use("sales-agent:secret-looking-jti", clock.now + 60)
    async with engine.connect() as conn:
        (key,) = (await conn.execute(select(used_assertions.c.key))).scalars().all()
    assert "sales" not in key and len(key) == 64


async def test_an_unreachable_database_raises_instead_of_accepting(tmp_path: Path) -> None:
    # Fail closed: no answer must never read as "first use".
    dead = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises((OSError, DBAPIError)):
            await ReplayCache(dead).first_use("k", time.time() + 60)
    finally:
        await dead.dispose()


async def test_assertion_accepted_in_leeway_cannot_be_replayed(engine: AsyncEngine) -> None:
    # Exactly what gateway.delegation.token_exchange._check_assertion does, with its default leeway.
    private = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [{**ec_public_jwk(private.public_key()), "kid": "k1"}]}
    now = time.time()
    assertion = jwt.encode(
        {
            "iss": "sales-agent",
            "sub": "sales-agent",
            "aud": "https://switchboard.example/oauth/token",
            "iat": int(now) - 60,
            "exp": int(now) - 10,  # expired 10 s ago: still inside the 30 s leeway
            "jti": uuid.uuid4().hex,
        },
        private,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    cache = ReplayCache(engine)
    uses = 0
    for _ in range(3):
        checked = verify_client_assertion(
            assertion,
            jwks,
            client_id="sales-agent",
            audiences={"https://switchboard.example/oauth/token"},
            now=time.time(),
            leeway_seconds=30,
        )
        if await cache.first_use(f"sales-agent:{checked.token_id}", checked.expires_at):
            uses += 1
    assert uses == 1
