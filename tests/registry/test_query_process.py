"""Tool search's queries embedded in a process of their own
(`registry.query_process`), with a stand-in model loaded there: answers come
from that process; while it cannot answer, `embed` says so (None) and the
search embeds in its own process; one that died is started again."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from registry import query_process
from registry.query_batches import QueryBatches
from registry.query_process import QueryProcess

AXES = {"x": [1.0, 0.0], "y": [0.0, 1.0]}
MATRIX = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # tools a, b


class _Axes:
    """Embeds by `AXES`; a query "bad" fails the pass, "slow" takes a second."""

    def embed(self, texts: list[str]) -> Any:
        if "bad" in texts:
            raise RuntimeError("cannot embed")
        if "slow" in texts:
            import time

            time.sleep(1)
            return np.zeros((len(texts), 2), dtype=np.float32)
        return np.array([AXES[t] for t in texts], dtype=np.float32)


def load_axes() -> _Axes:
    """Run in the spawned process (found there by its module and name)."""
    return _Axes()


def load_nothing() -> _Axes:
    raise RuntimeError("no model here")


@pytest.fixture
def apart() -> Iterator[QueryProcess]:
    process = QueryProcess(load_axes)
    yield process
    process.close()


def test_queries_are_embedded_in_another_process(apart: QueryProcess) -> None:
    async def run() -> tuple[Any, bool, Any]:
        first = await apart.embed(["x"])  # starts it: not up yet
        up = await apart.started()
        return first, up, await apart.embed(["y", "x"])

    first, up, vectors = asyncio.run(run())
    assert first is None and up
    assert apart.pid is not None and apart.pid != os.getpid()
    assert vectors.tolist() == [AXES["y"], AXES["x"]]


def test_a_pass_the_model_fails_is_answered_none_and_the_next_is_not(
    apart: QueryProcess,
) -> None:
    async def run() -> tuple[Any, Any]:
        assert await apart.started()
        return await apart.embed(["x", "bad"]), await apart.embed(["x"])

    failed, later = asyncio.run(run())
    assert failed is None
    assert later.tolist() == [AXES["x"]]


def test_the_answer_of_a_cancelled_pass_is_not_taken_for_the_next(apart: QueryProcess) -> None:
    async def run() -> Any:
        assert await apart.started()
        slow = asyncio.create_task(apart.embed(["slow"]))
        await asyncio.sleep(0.2)  # sent: the process is in its pass
        slow.cancel()
        return await apart.embed(["y"])

    assert asyncio.run(run()).tolist() == [AXES["y"]]


def test_a_process_that_died_is_not_started_again_during_its_rest(
    apart: QueryProcess,
) -> None:
    async def run() -> tuple[Any, bool]:
        assert await apart.started()
        pid = apart.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        gone = await apart.embed(["x"])  # its end of the pipe is read: it died
        return gone, await apart.started()

    gone, restarted = asyncio.run(run())
    assert gone is None and not restarted


def test_a_process_that_died_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_process, "RESTART_SECONDS", 0.0)
    apart = QueryProcess(load_axes)

    async def run() -> tuple[Any, int | None, Any]:
        assert await apart.started()
        first = apart.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        gone = await apart.embed(["x"])
        assert await apart.started()
        return gone, first, await apart.embed(["x"])

    try:
        gone, _, vectors = asyncio.run(run())
    finally:
        apart.close()
    assert gone is None
    assert apart.pid is None  # closed
    assert vectors.tolist() == [AXES["x"]]


def test_a_model_that_does_not_load_there_leaves_queries_here() -> None:
    apart = QueryProcess(load_nothing)
    try:
        up = asyncio.run(apart.started())
    finally:
        apart.close()
    assert not up


def test_closed_it_ends_the_process(apart: QueryProcess) -> None:
    assert asyncio.run(apart.started())
    pid = apart.pid
    assert pid is not None
    apart.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped
    assert asyncio.run(apart.embed(["x"])) is None  # and not started again
    assert not asyncio.run(apart.started())


class _Here:
    """The in-process embedder: a different answer than the process's."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []

    def embed(self, texts: list[str]) -> Any:
        self.passes.append(list(texts))
        return np.array([AXES["y"] for _ in texts], dtype=np.float32)


def test_searches_use_the_process_once_up_and_their_own_until_then(apart: QueryProcess) -> None:
    here = _Here()

    async def run() -> tuple[Any, Any]:
        batches = QueryBatches(apart)
        before = await batches.nearest(here, "x", MATRIX, np.arange(2), 1)  # starting
        assert await apart.started()
        return before, await batches.nearest(here, "x", MATRIX, np.arange(2), 1)

    before, after = asyncio.run(run())
    assert [i for i, _ in before] == [1]  # embedded here, as "y"
    assert [i for i, _ in after] == [0]  # embedded there, as "x"
    assert here.passes == [["x"]]
