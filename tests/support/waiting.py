"""Waiting for a condition in a test: the one way to do it.

A test waits for what it needs (a row written, a task's state, a page's
text), looked at every ``every`` seconds until ``seconds`` pass, never for a
fixed time: a fixed sleep is either too short on a loaded machine (a flake)
or too long everywhere else (the suite's time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None], seconds: float = 30, every: float = 0.05, what: str = ""
) -> T:
    """``check()``'s first truthy value; an AssertionError naming ``what``
    (or ``check``) if none comes within ``seconds``."""
    deadline = time.monotonic() + seconds
    while (found := _look(check, deadline, seconds, what)) is None:
        time.sleep(every)
    return found


async def wait_for_async(
    check: Callable[[], T | None], seconds: float = 30, every: float = 0.05, what: str = ""
) -> T:
    """`wait_for` inside an event loop: the loop runs between looks (a
    blocking wait would stop the very task being waited for)."""
    deadline = time.monotonic() + seconds
    # A look every ``every`` seconds is the point here: what is waited for
    # sets no event.
    while (found := _look(check, deadline, seconds, what)) is None:  # noqa: ASYNC110
        await asyncio.sleep(every)
    return found


async def wait_for_awaited(
    check: Callable[[], Awaitable[T | None]],
    seconds: float = 30,
    every: float = 0.05,
    what: str = "",
) -> T:
    """`wait_for_async` for a look that is itself awaited (a request on an
    async client)."""
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what or check}")
        await asyncio.sleep(every)
    return found


def _look(check: Callable[[], T | None], deadline: float, seconds: float, what: str) -> T | None:
    """One look: ``check()``'s value if truthy; None to look again; past
    ``deadline``, the AssertionError."""
    found = check()
    if found:
        return found
    if time.monotonic() > deadline:
        raise AssertionError(f"not within {seconds} s: {what or check}")
    return None
