"""Retries with backoff, for idempotent calls only, under the upstream's breaker.

`run()` makes one call, or -- when the caller says the call is idempotent --
up to `RetrySettings.attempts` calls, waiting a capped, jittered exponential
delay between them (`delays()`, "full jitter"). Only a *transient* failure is
retried: the connection could not be made or was lost, the upstream timed
out, or it answered 5xx. An answer from the upstream -- an A2A or JSON-RPC
error included -- is final, and so is a refusal by the gateway itself (an
address the SSRF policy forbids). A call that is not idempotent is never
repeated, whatever happened.

Every attempt reports to the upstream's breaker; an open breaker stops the
retries (and refuses the first attempt) with `BreakerOpen`.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import grpc
import grpc.aio
import httpx
from a2a.client.errors import A2AClientTimeoutError

from adapters.http import UpstreamBadAnswer, UpstreamRefused
from gateway.delegation.breaker import Breakers
from gateway.storage.outages import DependencyUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 3  # in all, the first call included
    base_delay_seconds: float = 0.1
    max_delay_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay_seconds < 0 or self.max_delay_seconds < 0:
            raise ValueError("retries need attempts >= 1 and non-negative delays")


NO_RETRIES = RetrySettings(attempts=1)


def delays(settings: RetrySettings, rng: Callable[[], float] = random.random) -> Iterator[float]:
    """The waits before attempts 2, 3, ...: uniform in [0, min(cap, base * 2**n)].

    Full jitter (the AWS architecture blog's "Exponential Backoff and
    Jitter"): replicas retrying the same failed upstream spread out instead
    of arriving together. Pure given ``rng``.
    """
    for n in range(settings.attempts - 1):
        ceiling = min(settings.max_delay_seconds, settings.base_delay_seconds * 2**n)
        yield rng() * ceiling


class Failure(enum.Enum):
    """What a failed upstream call says about the upstream."""

    UNREACHED = "unreached"  # no connection was made: the request never left
    TRANSIENT = "transient"  # lost connection, timeout, 5xx: it may have been processed
    ANSWERED = "answered"  # the upstream answered (an error of its own, or nonsense)
    REFUSED = "refused"  # the gateway refused to call it (SSRF policy)


_CONNECT = (httpx.ConnectError, aiohttp.ClientConnectorError, ConnectionRefusedError)
_TIMEOUT = (httpx.TimeoutException, A2AClientTimeoutError, TimeoutError)
_TRANSPORT = (httpx.TransportError, aiohttp.ClientError, OSError)


class UpstreamStatus(Exception):
    """A 5xx-class HTTP answer, raised by a caller that got one as a value."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def classify(exc: BaseException) -> Failure:
    """Sort a failure by reading its whole cause chain (an SDK error wraps
    httpx's, which wraps aiohttp's); the deepest transport error decides."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 16:
        chain.append(cause)
        cause = cause.__cause__
    if any(isinstance(c, UpstreamRefused | DependencyUnavailable) for c in chain):
        # Refused by the gateway, or not sent for the gateway's own outage:
        # nothing said about the upstream.
        return Failure.REFUSED
    if any(isinstance(c, UpstreamBadAnswer) for c in chain):
        return Failure.ANSWERED
    for c in chain:
        status = _status_of(c)
        if status is not None:
            return Failure.TRANSIENT if status >= 500 else Failure.ANSWERED
    for c in chain:
        if isinstance(c, grpc.aio.AioRpcError):
            # UNAVAILABLE: no connection, or it was lost (gRPC's status docs);
            # a deadline is a timeout; any other status is the agent's answer.
            if c.code() == grpc.StatusCode.UNAVAILABLE:
                return Failure.TRANSIENT
            if c.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Failure.TRANSIENT
            return Failure.ANSWERED
    if any(isinstance(c, _CONNECT) for c in chain):
        # httpx-aiohttp reports every aiohttp connection error as ConnectTimeout;
        # aiohttp's own error in the chain is the accurate one.
        return Failure.UNREACHED
    if any(isinstance(c, (*_TIMEOUT, *_TRANSPORT)) for c in chain):
        return Failure.TRANSIENT
    return Failure.ANSWERED


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, UpstreamStatus):
        return exc.status
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status
    return None


def counts_against(failure: Failure) -> bool:
    """Whether the breaker counts it: only what says the upstream is down."""
    return failure in (Failure.UNREACHED, Failure.TRANSIENT)


def report(breakers: Breakers, upstream: str, exc: BaseException) -> None:
    """Tell the breaker how a call that is not `run()` went (a stream's opening)."""
    if counts_against(classify(exc)):
        breakers.failure(upstream)
    else:
        breakers.success(upstream)


@dataclass
class Attempts:
    """How a `run()` went, for the audit record."""

    made: int = 0
    last_failure: Failure | None = None


async def run(
    call: Callable[[], Awaitable[T]],
    *,
    upstream: str,
    breakers: Breakers,
    idempotent: bool,
    settings: RetrySettings,
    attempts: Attempts | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    classify: Callable[[BaseException], Failure] = classify,
    counts: Callable[[Failure], bool] = counts_against,
) -> T:
    """Call ``call`` under the breaker of ``upstream``, retrying transient
    failures when ``idempotent``. Raises the last failure, or `BreakerOpen`."""
    record = attempts if attempts is not None else Attempts()
    waits = delays(settings if idempotent else NO_RETRIES)
    while True:
        breakers.check(upstream)  # BreakerOpen: fail fast
        record.made += 1
        try:
            result = await call()
        except Exception as exc:
            failure = classify(exc)
            record.last_failure = failure
            if failure is Failure.ANSWERED or failure is Failure.REFUSED:
                breakers.success(upstream)  # it answered: it is up
                raise
            if counts(failure):
                breakers.failure(upstream)
            wait = next(waits, None)
            if wait is None:
                raise
            await sleep(wait)
            continue
        breakers.success(upstream)
        return result
