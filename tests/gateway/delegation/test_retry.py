"""Backoff bounds, failure classification and the retry loop."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import httpx
import pytest
from a2a.utils.errors import TaskNotFoundError
from hypothesis import example, given
from hypothesis import strategies as st

from adapters.http import UpstreamBadAnswer, UpstreamRefused
from gateway.delegation import retry
from gateway.delegation.breaker import BreakerOpen, Breakers, BreakerSettings
from gateway.delegation.retry import (
    Attempts,
    Failure,
    RetrySettings,
    UpstreamStatus,
    classify,
    delays,
)


@given(
    attempts=st.integers(1, 10),
    base=st.floats(0, 5),
    cap=st.floats(0, 30),
    rng=st.floats(0, 1, exclude_max=True),
)
@example(attempts=8, base=1.0, cap=0.99999, rng=0.9999999999999999)
def test_delays_are_bounded_and_grow_at_most_exponentially(
    attempts: int, base: float, cap: float, rng: float
) -> None:
    settings = RetrySettings(attempts=attempts, base_delay_seconds=base, max_delay_seconds=cap)
    waits = list(delays(settings, lambda: rng))
    assert len(waits) == attempts - 1
    for n, wait in enumerate(waits):
        assert 0 <= wait <= min(cap, base * 2**n)
    # fsum: the exactly rounded total. A plain sum() of seven waits of
    # 0.9999899999999999 rounds up past 7 * 0.99999 (hypothesis found it).
    assert math.fsum(waits) <= cap * (attempts - 1)


def _wrapped(inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("the SDK's wrapper") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (aiohttp.ClientConnectorError(None, OSError(111, "refused")), Failure.UNREACHED),  # type: ignore[arg-type]
        (httpx.ConnectError("refused"), Failure.UNREACHED),
        (httpx.ReadTimeout("slow"), Failure.TRANSIENT),
        (TimeoutError(), Failure.TRANSIENT),
        (aiohttp.ServerDisconnectedError(), Failure.TRANSIENT),
        (UpstreamStatus(503), Failure.TRANSIENT),
        (UpstreamRefused("private address"), Failure.REFUSED),
        (UpstreamBadAnswer("too large"), Failure.ANSWERED),
        (TaskNotFoundError("the agent says"), Failure.ANSWERED),
        (ValueError("nonsense"), Failure.ANSWERED),
    ],
)
def test_classify(exc: BaseException, failure: Failure) -> None:
    assert classify(exc) is failure
    assert classify(_wrapped(exc)) is failure  # read through the cause chain


def test_a_4xx_is_an_answer_and_a_5xx_transient() -> None:
    request = httpx.Request("POST", "http://agent/")
    for status, failure in ((404, Failure.ANSWERED), (502, Failure.TRANSIENT)):
        error = httpx.HTTPStatusError("x", request=request, response=httpx.Response(status))
        assert classify(_wrapped(error)) is failure


class Upstream:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def _run(upstream: Upstream, idempotent: bool, breakers: Breakers | None = None) -> str:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return await retry.run(
        upstream,
        upstream="a",
        breakers=breakers or Breakers(BreakerSettings(threshold=10)),
        idempotent=idempotent,
        settings=RetrySettings(attempts=3, base_delay_seconds=0.1, max_delay_seconds=1),
        sleep=sleep,
    )


async def test_a_call_that_is_not_idempotent_is_made_once() -> None:
    upstream = Upstream([httpx.ReadTimeout("slow")])
    with pytest.raises(httpx.ReadTimeout):
        await _run(upstream, idempotent=False)
    assert upstream.calls == 1


async def test_an_idempotent_call_is_retried_on_transient_failures_only() -> None:
    upstream = Upstream([httpx.ReadTimeout("slow"), UpstreamStatus(503)])
    assert await _run(upstream, idempotent=True) == "ok"
    assert upstream.calls == 3
    answered = Upstream([TaskNotFoundError("no")])
    with pytest.raises(TaskNotFoundError):
        await _run(answered, idempotent=True)
    assert answered.calls == 1
    exhausted = Upstream([UpstreamStatus(503)] * 5)
    with pytest.raises(UpstreamStatus):
        await _run(exhausted, idempotent=True)
    assert exhausted.calls == 3


async def test_an_opening_breaker_stops_the_retries() -> None:
    breakers = Breakers(BreakerSettings(threshold=2, cooldown_seconds=60))
    upstream = Upstream([UpstreamStatus(503)] * 5)
    with pytest.raises(BreakerOpen):
        await _run(upstream, idempotent=True, breakers=breakers)
    assert upstream.calls == 2


async def test_attempts_are_reported() -> None:
    attempts = Attempts()
    await retry.run(
        Upstream([UpstreamStatus(500)]),
        upstream="a",
        breakers=Breakers(BreakerSettings()),
        idempotent=True,
        settings=RetrySettings(base_delay_seconds=0),
        attempts=attempts,
        sleep=lambda _: asyncio.sleep(0),
    )
    assert attempts.made == 2 and attempts.last_failure is Failure.TRANSIENT
