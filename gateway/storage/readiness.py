"""What `/readyz` checks: each dependency the gateway uses, one by one.

The database always; Redis when `redis_url` is set. Each check has its own
short deadline, so a dependency that hangs (a blackholed address) makes the
probe answer "unavailable" rather than time out the load balancer's request.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.db import ping
from gateway.storage.outages import DATABASE, REDIS

CHECK_SECONDS = 3.0
OK = "ok"


class Readiness:
    def __init__(self, engine: AsyncEngine, redis_url: str | None) -> None:
        self._engine = engine
        self._redis = (
            Redis.from_url(
                redis_url, socket_connect_timeout=CHECK_SECONDS, socket_timeout=CHECK_SECONDS
            )
            if redis_url
            else None
        )

    async def check(self) -> dict[str, str]:
        """Each dependency's state: "ok", or "unavailable: <why>" (no secret in it)."""
        checks = {DATABASE: self._database()}
        if self._redis is not None:
            checks[REDIS] = self._ping_redis(self._redis)
        results = await asyncio.gather(*checks.values())
        return dict(zip(checks, results, strict=True))

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await ping(self._engine)
        except Exception as exc:
            return f"unavailable: {type(exc).__name__}"
        return OK

    @staticmethod
    async def _ping_redis(redis: Redis) -> str:
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await redis.ping()
        except Exception as exc:
            return f"unavailable: {type(exc).__name__}"
        return OK

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
