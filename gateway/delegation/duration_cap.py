"""A stream's duration cap: one timer for the whole stream.

`Delegate.stream` waits for each item under the cap. An `asyncio.timeout`
around each wait schedules and cancels a timer and looks the task up every
time: at a stream's rate of items that was a tenth of what relaying an item
cost. Here the stream has one timer, set when it opens; when the cap passes
while the stream waits for an item, the timer cancels the waiting task and
the wait raises `TimeoutError` -- as `asyncio.timeout` does it, the task's
cancellation count telling its own cancel from anyone else's (so a caller's
cancellation arriving meanwhile still cancels). When the cap passes between
items (the item's reader is slow), the next wait raises at once, before the
upstream is read again.

Never held across a ``yield``: each wait is one `next`, in whichever task
reads the stream at that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


class DurationCap:
    """``seconds`` from now: each `next` raises `TimeoutError` once passed."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + seconds
        self._waiting: asyncio.Task[object] | None = None
        self._cancelled: asyncio.Task[object] | None = None  # the task the timer cancelled
        # Set when the timer fires: uvloop rounds a timer to the millisecond,
        # so it may fire a little before `loop.time()` reaches the deadline.
        self._expired = False
        self._timer = self._loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._expired = True
        task = self._waiting
        if task is not None and not task.done():
            self._cancelled = task
            task.cancel()

    async def next(self, stream: AsyncIterator[T]) -> T:
        """The stream's next item (`StopAsyncIteration` at its end)."""
        if self._expired or self._loop.time() >= self._deadline:
            raise TimeoutError
        task = asyncio.current_task(self._loop)  # (the loop given: no lookup of it)
        assert task is not None
        cancelling = task.cancelling()
        self._waiting = task
        try:
            return await anext(stream)
        except asyncio.CancelledError:
            if self._cancelled is task:
                self._cancelled = None
                # Ours alone (no other cancel asked since the wait began): the cap.
                if task.uncancel() <= cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self._waiting = None
            if self._cancelled is task:  # cancelled, and the stream went on regardless
                self._cancelled = None
                task.uncancel()

    def close(self) -> None:
        self._timer.cancel()
