"""`DurationCap`: one timer per stream, raising `TimeoutError` as
`asyncio.timeout` would, and cancelling nothing but a wait for an item."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gateway.delegation.duration_cap import DurationCap


class Upstream:
    """Items at once, then (``then_wait``) a wait that never ends; counts reads."""

    def __init__(self, items: int, *, then_wait: bool = True) -> None:
        self.items = items
        self.then_wait = then_wait
        self.reads = 0

    def __aiter__(self) -> AsyncIterator[int]:
        return self

    async def __anext__(self) -> int:
        self.reads += 1
        if self.reads <= self.items:
            return self.reads
        if self.then_wait:
            await asyncio.Event().wait()
        raise StopAsyncIteration


async def test_items_pass_then_the_stream_ends() -> None:
    cap = DurationCap(5)
    upstream = Upstream(2, then_wait=False)
    assert [await cap.next(upstream), await cap.next(upstream)] == [1, 2]
    with pytest.raises(StopAsyncIteration):
        await cap.next(upstream)
    cap.close()


async def test_the_cap_passing_during_a_wait_raises_timeout_and_leaves_no_cancel() -> None:
    cap = DurationCap(0.05)
    upstream = Upstream(1)
    assert await cap.next(upstream) == 1
    with pytest.raises(TimeoutError):
        await cap.next(upstream)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # nothing pending for this task: it goes on
    cap.close()


async def test_the_cap_passing_between_items_cancels_nothing_and_the_next_wait_raises() -> None:
    cap = DurationCap(0.05)
    upstream = Upstream(3)
    assert await cap.next(upstream) == 1
    await asyncio.sleep(0.1)  # the reader's own work, past the cap: not cancelled
    with pytest.raises(TimeoutError):
        await cap.next(upstream)
    assert upstream.reads == 1  # not read again once the cap passed
    cap.close()


class Deaf:
    """An upstream that swallows the first cancel of its wait and waits on."""

    def __init__(self) -> None:
        self.swallowed = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[int]:
        return self

    async def __anext__(self) -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.swallowed.set()
        await asyncio.Event().wait()
        raise StopAsyncIteration


async def test_a_callers_cancel_after_the_caps_is_a_cancel() -> None:
    upstream = Deaf()

    async def reader() -> None:
        cap = DurationCap(0.02)
        try:
            await cap.next(upstream)
        finally:
            cap.close()

    task = asyncio.create_task(reader())
    await upstream.swallowed.wait()  # the cap cancelled the wait
    task.cancel()  # and then the caller
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_callers_cancel_is_a_cancel() -> None:
    upstream = Upstream(0)
    cap = DurationCap(5)
    task = asyncio.create_task(cap.next(upstream))
    await asyncio.sleep(0)
    assert upstream.reads == 1  # waiting for the item
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cap.close()


class Stubborn:
    """An upstream that swallows the cap's cancel of its wait and answers anyway."""

    def __aiter__(self) -> AsyncIterator[int]:
        return self

    async def __anext__(self) -> int:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return 7


async def test_an_item_after_the_caps_cancel_leaves_no_cancel_behind() -> None:
    cap = DurationCap(0.02)
    assert await cap.next(Stubborn()) == 7
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # not cancelled later either
    with pytest.raises(TimeoutError):
        await cap.next(Stubborn())
    cap.close()


async def _a_cap_fired_while_the_reader_was_busy() -> None:
    upstream = Upstream(1)
    cap = DurationCap(0.0104)
    assert await cap.next(upstream) == 1
    await asyncio.sleep(0.010)  # busy with the item while the cap's timer fires
    try:
        # Without the fired flag the cap is lost on uvloop (its timers are
        # rounded to the millisecond and may fire before the deadline):
        # this wait would then go on until wait_for's own 5 s.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cap.next(upstream), 5)
        assert upstream.reads == 1  # refused at once, not after a wait
    finally:
        cap.close()


def test_a_cap_that_fired_early_still_stops_the_next_wait_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")  # what uvicorn runs the gateway on

    async def often() -> None:
        for _ in range(10):
            await _a_cap_fired_while_the_reader_was_busy()

    uvloop.run(often())
