"""Waiting for a condition in a test: the one way to do it.

A test waits for what it needs (a row written, a task's state, a page's
text), looked at every ``every`` seconds until ``seconds`` pass, never for a
fixed time: a fixed sleep is either too short on a loaded machine (a flake)
or too long everywhere else (the suite's time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None], seconds: float = 30, every: float = 0.05, what: str = ""
) -> T:
    """``check()``'s first truthy value; an AssertionError naming ``what``
    (or ``check``) if none comes within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what or check}")
        time.sleep(every)


async def wait_for_async(
    check: Callable[[], T | None], seconds: float = 30, every: float = 0.05, what: str = ""
) -> T:
    """`wait_for` inside an event loop: the loop runs between looks (a
    blocking wait would stop the very task being waited for)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what or check}")
        await asyncio.sleep(every)
