"""Waiting for a condition in a test: the one way to do it.

A test waits for what it needs (a row written, a task's state, a page's
text), looked at every ``every`` seconds until ``seconds`` pass, never for a
fixed time: a fixed sleep is either too short on a loaded machine (a flake)
or too long everywhere else (the suite's time)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from registry.tls import client_tls

T = TypeVar("T")

# What a failed wait names: a text, or a function that says it at the
# deadline (the last value seen, a process's log).
What = str | Callable[[], object]


def wait_for(
    check: Callable[[], T | None], seconds: float = 30, every: float = 0.05, what: What = ""
) -> T:
    """``check()``'s first truthy value; an AssertionError naming ``what``
    (or ``check``) if none comes within ``seconds``. An exception ``check``
    raises (a process that died) ends the wait at once."""
    deadline = time.monotonic() + seconds
    while (found := _look(check, deadline, seconds, what)) is None:
        time.sleep(every)
    return found


async def wait_for_async(
    check: Callable[[], T | None], seconds: float = 30, every: float = 0.05, what: What = ""
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
    what: What = "",
) -> T:
    """`wait_for_async` for a look that is itself awaited (a request on an
    async client)."""
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(_missed(seconds, what, check))
        await asyncio.sleep(every)
    return found


def wait_answering(
    url: str,
    process: subprocess.Popen[Any],
    seconds: float = 30,
    every: float = 0.1,
    what: What = "",
) -> None:
    """Until ``GET url`` answers 200 (a server starting in ``process``, a
    process of its own); an AssertionError with ``what`` (its log) at once if
    the process exits first."""

    def answers() -> bool:
        if process.poll() is not None:
            said = what() if callable(what) else what
            raise AssertionError(f"{url}: the process exited ({process.returncode}): {said}")
        with contextlib.suppress(httpx.HTTPError):
            return (
                httpx.get(url, timeout=2, trust_env=False, verify=client_tls()).status_code == 200
            )
        return False

    wait_for(answers, seconds=seconds, every=every, what=what or url)


def _look(check: Callable[[], T | None], deadline: float, seconds: float, what: What) -> T | None:
    """One look: ``check()``'s value if truthy; None to look again; past
    ``deadline``, the AssertionError."""
    found = check()
    if found:
        return found
    if time.monotonic() > deadline:
        raise AssertionError(_missed(seconds, what, check))
    return None


def _missed(seconds: float, what: What, check: object) -> str:
    said = what() if callable(what) else what
    return f"not within {seconds} s: {said or check}"
