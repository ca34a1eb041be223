"""The model in its own process (`registry.model_process`): the same vectors
as in the gateway's, and a new child when the old one died. Needs the extra
``switchboard[semantic]``."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from registry.model_process import ModelProcess
from registry.tool_embedder import Embedder
from tests.support.semantic import skip_unless_installed

skip_unless_installed()

TEXTS = ["merge a pull request into its base", "make the meeting room warmer", "stock"]


@pytest.fixture(scope="module")
def model() -> Iterator[ModelProcess]:
    started = ModelProcess.load()
    yield started
    started.close()


def _children_but(pids: set[int | None]) -> list[multiprocessing.process.BaseProcess]:
    return [c for c in multiprocessing.active_children() if c.pid not in pids]


def test_the_childs_vectors_are_the_gateways(model: ModelProcess) -> None:
    assert np.allclose(model.embed(TEXTS), Embedder.load().embed(TEXTS), atol=1e-5)


def test_a_killed_child_is_replaced() -> None:
    others = {c.pid for c in multiprocessing.active_children()}  # other tests', closing
    model = ModelProcess.load()
    expected = model.embed(TEXTS[:1])
    (child,) = _children_but(others)
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(10)  # the pool's own thread may reap it first: then this returns at once
    # Whether the pool has seen the death when the next call comes is a race
    # of its own thread's: that call is answered by a new child, or fails.
    try:
        first = model.embed(TEXTS[:1])
    except BrokenProcessPool:
        first = None
    assert first is None or np.allclose(first, expected)
    assert np.allclose(model.embed(TEXTS[:1]), expected)
    assert len(_children_but(others | {child.pid})) == 1  # the new child
    model.close()
