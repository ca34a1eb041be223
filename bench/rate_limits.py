"""What a rate limit adds to a delegated call: `RateLimits.hit` for one call
against one limit, in memory and in Redis, next to the same call with no
limits configured (the pipeline then skips counting altogether), in one run.

    python -m bench.rate_limits                 # Redis at 127.0.0.1:6379/12
    python -m bench.rate_limits --calls 20000 --redis redis://127.0.0.1:6379/12

The load is one caller awaiting each call in turn (latency per call, which is
what a call pays); the counter keys cycle over 1,000 users so no limit is
reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import redis

from gateway.delegation.rate_limits import RateLimits
from policies.limits import CallFacts, LimitRule, applicable

RULES = [LimitRule(name="per-user", rate="1000000/minute", per=["user"])]


async def _per_call(limits: RateLimits | None, calls: int) -> float:
    """Median µs per call over 5 batches."""
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for i in range(calls // 5):
            if limits is None:
                continue  # no rules: the pipeline never counts
            facts = CallFacts(f"user-{i % 1000}", "client", "agent", "skill")
            await limits.hit(applicable(RULES, facts, "skill"))
        batches.append((time.perf_counter() - started) / (calls // 5) * 1e6)
    return statistics.median(batches)


async def main(calls: int, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    rows = [
        ("no limits", await _per_call(None, calls)),
        ("memory", await _per_call(RateLimits(None), calls)),
        ("redis", await _per_call(RateLimits(redis_url), calls)),
    ]
    redis.Redis.from_url(redis_url).flushdb()
    load = os.getloadavg()[0]
    print(f"rate limits: one limit per call, {calls} calls, load average {load:.2f}")
    print(f"{'counters':12} {'µs/call':>9}")
    for name, micros in rows:
        print(f"{name:12} {micros:9.1f}")
    print("target: <= 200 µs added per call with limits on (Redis)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.redis))
