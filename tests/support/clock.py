"""An event loop on a clock of the test's own, for code that times itself by
the loop (``loop.time()``: `asyncio.timeout`, `asyncio.sleep`, `call_later`):
the periodic jobs (`gateway.storage.periodic`), a step's stopped clock
(`gateway.flows.step_clock`).

The clock stands still while any task can run, and when every task waits it
jumps to the next timer at once. So ``await asyncio.sleep(3600)`` in a test
returns as soon as everything else has done what it would do in that hour,
taking no time; what a test asserts afterwards is what the code decided, not
what a loaded machine got round to. Only for code that waits on the loop's
own timers and events: a thread's work (an executor, aiosqlite) or a socket
is not waited for before the clock jumps."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Skipping(selectors.DefaultSelector):
    """Never blocks: a wait for the next timer moves the loop's clock to it."""

    def __init__(self, loop: FakeClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer: only another thread can wake the loop
            return super().select(None)
        self._loop.now += timeout
        return ready


class FakeClockLoop(asyncio.SelectorEventLoop):
    """See the module's docstring. ``now``: the clock, from 0."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_Skipping(self))

    def time(self) -> float:
        return self.now


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a `FakeClockLoop`."""
    with asyncio.Runner(loop_factory=FakeClockLoop) as runner:
        return runner.run(main)


class Clock:
    """A clock the test moves by hand, for code that takes its clock as a
    function (``monotonic=``, ``clock=``): ``clock()`` reads it, ``clock.now
    += seconds`` moves it. It starts at ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
