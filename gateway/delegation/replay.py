"""Remembering one-time values (client assertion `jti`s) until they expire.

RFC 7523 §3 item 7: the authorization server may reject a JWT whose `jti` it
has seen before. With several replicas the memory must be shared: Redis
(`SET NX EXAT`, one round trip, atomic). A single process keeps it in memory.
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis


class ReplayCache(Protocol):
    async def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time ``key`` is seen before it expires, False after."""
        ...

    async def aclose(self) -> None: ...


class MemoryReplayCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self._max = max_entries

    async def first_use(self, key: str, expires_at: float) -> bool:
        now = time.time()
        if len(self._seen) >= self._max:
            self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
            if len(self._seen) >= self._max:
                return False  # full of live entries: fail closed
        seen = self._seen.get(key)
        if seen is not None and seen > now:
            return False
        self._seen[key] = expires_at
        return True

    async def aclose(self) -> None:
        return None


class RedisReplayCache:
    def __init__(self, url: str, prefix: str = "switchboard:jti:") -> None:
        self._redis = Redis.from_url(url)
        self._prefix = prefix

    async def first_use(self, key: str, expires_at: float) -> bool:
        # Keep it at least a second so a just-expired assertion cannot slip through twice.
        until = max(int(expires_at) + 1, int(time.time()) + 1)
        return bool(await self._redis.set(self._prefix + key, b"1", nx=True, exat=until))

    async def aclose(self) -> None:
        await self._redis.aclose()


def replay_cache(redis_url: str | None) -> ReplayCache:
    return RedisReplayCache(redis_url) if redis_url else MemoryReplayCache()
