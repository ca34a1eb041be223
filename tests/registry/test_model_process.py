"""The model in its own process (`registry.model_process`): the same vectors
as in the gateway's, a refused request that leaves the child serving, and a
new child when the old one died. Needs the extra ``switchboard[semantic]``."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import numpy as np

from registry.model_process import ModelFailed, ModelProcess
from registry.tool_embedder import Embedder
from tests.support.semantic import skip_unless_installed

skip_unless_installed()

TEXTS = ["merge a pull request into its base", "make the meeting room warmer", "stock"]


def test_the_childs_vectors_are_the_gateways_and_a_bad_request_leaves_it_serving() -> None:
    async def run() -> tuple[Any, str, Any]:
        model = await ModelProcess.load()
        try:
            vectors = await model.embed(TEXTS)
            try:
                await model.embed([1])  # type: ignore[list-item]
                refused = ""
            except ModelFailed as error:
                refused = str(error)
            return vectors, refused, await model.embed(TEXTS[:1])
        finally:
            await model.close()

    vectors, refused, after = asyncio.run(run())
    expected = Embedder.load().embed(TEXTS)
    assert np.allclose(vectors, expected, atol=1e-5)
    assert "a JSON array of strings" in refused
    assert np.allclose(after, expected[:1], atol=1e-5)


def test_a_killed_child_is_replaced() -> None:
    async def run() -> tuple[Any, Any, Any, int | None, int | None]:
        model = await ModelProcess.load()
        try:
            expected = await model.embed(TEXTS[:1])
            killed = model.pid
            os.kill(killed or 0, signal.SIGKILL)
            # Whether the loop has seen the death when the next call comes is
            # a race of the kernel's: that call is answered by a new child,
            # or fails and leaves the next to start one.
            try:
                first = await model.embed(TEXTS[:1])
            except ModelFailed:
                first = None
            return expected, first, await model.embed(TEXTS[:1]), killed, model.pid
        finally:
            await model.close()

    expected, first, second, killed, now = asyncio.run(run())
    assert first is None or np.allclose(first, expected)
    assert np.allclose(second, expected)
    assert now is not None and now != killed
