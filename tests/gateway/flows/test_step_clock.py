"""A step's timeout stood still while a human decides (`gateway.flows.step_clock`)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.flows.step_clock import StoppedClock
from tests.support import clock as fake_clock


def test_the_time_a_human_takes_does_not_count() -> None:
    """On the test's clock (`tests.support.clock`): an hour held takes no time."""

    passed: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(0.3) as timeout:
            clock = StoppedClock(timeout)
            await asyncio.sleep(0.1)  # of the 0.3 s, 0.2 s are left
            clock.hold(True)
            clock.hold(True)  # said twice: still what was left the first time
            assert timeout.when() is None
            await asyncio.sleep(3600)  # an hour held: no TimeoutError
            passed.append("held")
            clock.hold(False)
            assert timeout.when() == pytest.approx(loop.time() + 0.2)
            await asyncio.sleep(0.19)  # not yet
            assert not timeout.expired()
            passed.append("left")
            await asyncio.sleep(5)  # ends by the timeout, with what was left
        raise AssertionError("not timed out")  # pragma: no cover

    with pytest.raises(TimeoutError):
        fake_clock.run(scenario())
    assert passed == ["held", "left"]


def test_what_is_left_is_given_back() -> None:
    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(10) as timeout:
            clock = StoppedClock(timeout)
            before = (timeout.when() or 0) - loop.time()
            clock.hold(True)
            clock.hold(False)
            after = (timeout.when() or 0) - loop.time()
            await asyncio.sleep(0)
        return before, after

    before, after = asyncio.run(scenario())
    assert 0 < after <= before <= 10


def test_a_step_without_a_timeout_has_nothing_to_stop() -> None:
    async def scenario() -> None:
        async with asyncio.timeout(None) as timeout:
            clock = StoppedClock(timeout)
            clock.hold(True)
            clock.hold(False)
            assert timeout.when() is None
            await asyncio.sleep(0)

    asyncio.run(scenario())
