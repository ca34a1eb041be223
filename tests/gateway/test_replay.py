"""gateway.delegation.replay: one-time `jti`s, in memory and in the real Redis (db 15).

Each Redis test uses its own random key prefix and deletes its keys afterwards,
so the tests can run in parallel with each other and with a live gateway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.delegation import replay
from gateway.delegation.replay import MemoryReplayCache, RedisReplayCache, replay_cache
from policies.client_auth import verify_client_assertion
from policies.keys import ec_public_jwk

REDIS_URL = "redis://127.0.0.1:6379/15"


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace the replay module's view of the wall clock (and only its view)."""
    fake = Clock()
    monkeypatch.setattr(replay, "time", SimpleNamespace(time=fake.time))
    return fake


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    prefix = f"switchboard-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def redis_cache(prefix: str) -> AsyncIterator[RedisReplayCache]:
    cache = RedisReplayCache(REDIS_URL, prefix=prefix)
    yield cache
    await cache.aclose()


# --------------------------------------------------------------------------- memory


async def test_memory_first_use_only_once(clock: Clock) -> None:
    cache = MemoryReplayCache()
    assert await cache.first_use("agent:jti-1", clock.now + 60) is True
    assert await cache.first_use("agent:jti-1", clock.now + 60) is False
    assert await cache.first_use("agent:jti-2", clock.now + 60) is True
    await cache.aclose()


async def test_memory_remembers_until_expiry(clock: Clock) -> None:
    cache = MemoryReplayCache()
    assert await cache.first_use("k", clock.now + 60)
    clock.now += 59.9
    assert not await cache.first_use("k", clock.now + 60)


async def test_memory_forgets_after_expiry(clock: Clock) -> None:
    cache = MemoryReplayCache()
    assert await cache.first_use("k", clock.now + 60)
    clock.now += 60  # expired at exactly its expires_at
    assert await cache.first_use("k", clock.now + 60)
    assert not await cache.first_use("k", clock.now + 60)  # and remembered anew


async def test_memory_full_of_live_entries_fails_closed(clock: Clock) -> None:
    cache = MemoryReplayCache(max_entries=2)
    assert await cache.first_use("a", clock.now + 60)
    assert await cache.first_use("b", clock.now + 60)
    # A never-seen key cannot be remembered, so it must not be accepted.
    assert await cache.first_use("c", clock.now + 60) is False
    assert await cache.first_use("a", clock.now + 60) is False


async def test_memory_full_cache_prunes_expired_entries(clock: Clock) -> None:
    cache = MemoryReplayCache(max_entries=2)
    assert await cache.first_use("a", clock.now + 10)
    assert await cache.first_use("b", clock.now + 60)
    clock.now += 30  # "a" expired, "b" still live
    assert await cache.first_use("c", clock.now + 60) is True
    assert await cache.first_use("b", clock.now + 60) is False
    assert await cache.first_use("c", clock.now + 60) is False


def test_replay_cache_factory() -> None:
    assert isinstance(replay_cache(None), MemoryReplayCache)
    assert isinstance(replay_cache(""), MemoryReplayCache)


async def test_replay_cache_factory_redis() -> None:
    cache = replay_cache(REDIS_URL)
    assert isinstance(cache, RedisReplayCache)
    await cache.aclose()


# --------------------------------------------------------------------------- redis


async def test_redis_first_use_only_once(redis_cache: RedisReplayCache) -> None:
    exp = time.time() + 60
    assert await redis_cache.first_use("agent:jti-1", exp) is True
    assert await redis_cache.first_use("agent:jti-1", exp) is False
    assert await redis_cache.first_use("agent:jti-2", exp) is True


async def test_redis_key_expires_just_after_expires_at(
    redis_cache: RedisReplayCache, redis: Redis, prefix: str
) -> None:
    exp = time.time() + 60
    assert await redis_cache.first_use("k", exp)
    # One round trip, SET NX EXAT: the key dies a second after the assertion does.
    assert await redis.expiretime(prefix + "k") == int(exp) + 1
    assert await redis.get(prefix + "k") == b"1"


async def test_redis_past_expiry_is_still_kept_a_second(
    redis_cache: RedisReplayCache, redis: Redis, prefix: str
) -> None:
    before = int(time.time())
    assert await redis_cache.first_use("k", time.time() - 100)
    # EXAT in the past would delete the key at once; it is kept at least a second.
    assert await redis.expiretime(prefix + "k") >= before + 1
    assert await redis_cache.first_use("k", time.time() - 100) is False


async def test_redis_forgets_after_expiry(redis_cache: RedisReplayCache) -> None:
    assert await redis_cache.first_use("k", time.time() - 100)  # kept ~1 s
    deadline = time.monotonic() + 3
    while not await redis_cache.first_use("k", time.time() + 60):
        assert time.monotonic() < deadline, "the key never expired"
        await asyncio.sleep(0.05)
    assert await redis_cache.first_use("k", time.time() + 60) is False


async def test_redis_concurrent_first_use_has_one_winner(redis_cache: RedisReplayCache) -> None:
    exp = time.time() + 60
    results = await asyncio.gather(*(redis_cache.first_use("race", exp) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]


async def test_redis_concurrent_replicas_have_one_winner(prefix: str) -> None:
    # Five replicas, each with its own connection pool, racing for one jti.
    replicas = [RedisReplayCache(REDIS_URL, prefix=prefix) for _ in range(5)]
    try:
        exp = time.time() + 60
        results = await asyncio.gather(
            *(replica.first_use("race", exp) for replica in replicas for _ in range(4))
        )
    finally:
        for replica in replicas:
            await replica.aclose()
    assert results.count(True) == 1
    assert len(results) == 20


async def test_redis_prefix_separates_caches(prefix: str) -> None:
    first = RedisReplayCache(REDIS_URL, prefix=prefix + "a:")
    second = RedisReplayCache(REDIS_URL, prefix=prefix + "b:")
    try:
        assert await first.first_use("k", time.time() + 60)
        assert await second.first_use("k", time.time() + 60)
    finally:
        await first.aclose()
        await second.aclose()


async def test_unreachable_redis_raises_instead_of_accepting() -> None:
    # Fail closed: no answer from Redis must never read as "first use".
    cache = RedisReplayCache("redis://127.0.0.1:1/15")
    try:
        with pytest.raises(RedisConnectionError):
            await cache.first_use("k", time.time() + 60)
    finally:
        await cache.aclose()


# --------------------------------------------------------------------------- known bug


async def test_assertion_accepted_in_leeway_cannot_be_replayed() -> None:
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
    cache = MemoryReplayCache()
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
