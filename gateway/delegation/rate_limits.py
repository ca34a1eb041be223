"""Counting calls against the policy's rate limits (`policies.limits`), on the
`limits` library: in memory for one process, in Redis (`redis_url`) so every
replica counts in the same counters.

A call is refused when any limit that applies to it is reached; the caller is
told when to come back (the reset of the counter that refused it). Limits are
tested before any is counted, so a call refused by one limit uses up none of
the others (two calls racing can both pass the test and one be refused at
the hit: the hit decides).

Redis unreachable: the call is let through and a warning logged. A rate limit
caps consumption; it grants nothing, and an outage of the counter store must
not become an outage of every delegation (docs/security.md).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string

from policies.limits import AppliedLimit, Strategy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimitReached:
    limit: AppliedLimit
    retry_after: int  # whole seconds, at least 1 (RFC 9110 §10.2.3)

    def reason(self) -> str:
        return f"rate limit {self.limit.describe()} reached; retry after {self.retry_after} s"


@dataclass(frozen=True)
class LimitState:
    limit: AppliedLimit
    remaining: int
    resets_in: int


class RateLimits:
    def __init__(self, redis_url: str | None) -> None:
        storage = (
            storage_from_string(
                "async+" + redis_url, implementation="redispy", key_prefix="switchboard-limits"
            )
            if redis_url
            else MemoryStorage()
        )
        assert isinstance(storage, Storage)
        self.storage = storage
        self._limiters: dict[Strategy, RateLimiter] = {
            "fixed-window": FixedWindowRateLimiter(self.storage),
            "moving-window": MovingWindowRateLimiter(self.storage),
            "sliding-window-counter": SlidingWindowCounterRateLimiter(self.storage),
        }

    async def hit(self, limits: tuple[AppliedLimit, ...]) -> LimitReached | None:
        """Count one call against ``limits``; the first reached, or None."""
        if not limits:
            return None
        try:
            # Tested first only when several apply, so that one reached uses up
            # none of the others; with one, its hit alone decides (one round
            # trip to Redis instead of two).
            for limit in limits if len(limits) > 1 else ():
                if not await self._limiter(limit).test(parse(limit.rate), *limit.key):
                    return await self._reached(limit)
            for limit in limits:
                if not await self._limiter(limit).hit(parse(limit.rate), *limit.key):
                    return await self._reached(limit)
        except Exception as exc:  # the store is down: see the module docstring
            logger.warning("rate limits not counted (%s): call let through", type(exc).__name__)
        return None

    async def state(self, limits: tuple[AppliedLimit, ...]) -> list[LimitState]:
        """What is left of each limit, counting nothing (for explain)."""
        states = []
        for limit in limits:
            stats = await self._limiter(limit).get_window_stats(parse(limit.rate), *limit.key)
            states.append(
                LimitState(
                    limit, stats.remaining, max(0, math.ceil(stats.reset_time - time.time()))
                )
            )
        return states

    async def _reached(self, limit: AppliedLimit) -> LimitReached:
        stats = await self._limiter(limit).get_window_stats(parse(limit.rate), *limit.key)
        return LimitReached(limit, max(1, math.ceil(stats.reset_time - time.time())))

    def _limiter(self, limit: AppliedLimit) -> RateLimiter:
        return self._limiters[limit.strategy]
