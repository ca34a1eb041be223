"""A DBOS call in a thread outlives its cancelled caller: `ended_before_stop`
keeps it (unshielded, its thread would go on unseen, and once a test's
database is dropped DBOS retries it for ever), so the engine's stop can wait
for it before DBOS is destroyed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.flows import engine


async def test_a_call_whose_caller_is_cancelled_ends_and_is_waited_for() -> None:
    release = threading.Event()
    ended = threading.Event()

    def blocking_call() -> str:
        release.wait(10)
        ended.set()
        return "listed"

    caller = asyncio.create_task(engine.ended_before_stop(asyncio.to_thread(blocking_call)))
    await asyncio.sleep(0)  # the call under way in its thread
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    # The caller has gone; the call is still known, and what stop waits for.
    (call,) = engine._CALLS
    assert not call.done()
    release.set()
    done, _ = await asyncio.wait([call], timeout=10)
    assert done == {call} and call.result() == "listed" and ended.is_set()
    assert not engine._CALLS


async def test_a_call_that_fails_after_its_caller_left_is_retrieved_not_warned() -> None:
    release = threading.Event()

    def failing_call() -> None:
        release.wait(10)
        raise RuntimeError("database gone")

    caller = asyncio.create_task(engine.ended_before_stop(asyncio.to_thread(failing_call)))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    (call,) = engine._CALLS
    release.set()
    await asyncio.wait([call], timeout=10)
    assert isinstance(call.exception(), RuntimeError)
    assert not engine._CALLS
