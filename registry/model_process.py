"""Tool search's model in a process of its own.

The model is numpy: a pass is a few hundred array operations, and between
two of them a worker thread running it must take the interpreter's lock
back from the event loop. With the loop busy serving requests, each of
those hand-overs waits for the loop's switch interval (5 ms): measured, a
pass of eight queries took 25 ms alone and 1.6 s beside a busy thread. In a
child process (`registry.model_worker`) the model has an interpreter of its
own, and the gateway's loop and the model each run on a core.

The loop talks to the child over its standard streams, itself: no thread
carries a request or an answer, so none waits for the lock either. One
exchange at a time, in the order asked; an exchange runs to its end even if
the search that asked is cancelled (the stream would otherwise be left
half-read). If the child dies (killed, out of memory), the exchange in it
fails and the next call starts a new child.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from registry.model_worker import FAILED, HEADER, READY
from registry.tool_embedder import SemanticUnavailable, model_dir, one_blas_thread

LOAD_SECONDS = 120.0  # a loaded machine takes a while to import numpy and read the weights


class ModelFailed(RuntimeError):
    """The child could not embed the texts (its message), or died."""


class ModelProcess:
    """`Embedder.embed` in a child process, awaited."""

    def __init__(self) -> None:
        self._child: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()

    @classmethod
    async def load(cls) -> ModelProcess:
        """The child, started and its model loaded. `SemanticUnavailable`
        when the extra is missing or the model does not load."""
        model_dir()  # the extra's absence said here, not by a dead child
        # The gateway's own numpy (a search's similarities): one BLAS
        # thread, as in the child, not a spinning pool on every core.
        one_blas_thread()
        started = cls()
        try:
            await started._start()
        except (OSError, ModelFailed, TimeoutError) as error:
            await started.close()
            raise SemanticUnavailable(f"the model did not load in its process: {error}") from error
        return started

    async def _start(self) -> asyncio.subprocess.Process:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "registry.model_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._child = child
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), LOAD_SECONDS)
        if line != READY:
            raise ModelFailed(f"the model's process ended before it was ready ({line!r})")
        return child

    @property
    def pid(self) -> int | None:
        """The child's process id (None: none runs)."""
        return None if self._child is None else self._child.pid

    async def embed(self, texts: list[str]) -> Any:
        """One row per text, as `Embedder.embed`."""
        exchange = asyncio.ensure_future(self._exchange(texts))
        return await asyncio.shield(exchange)

    async def _exchange(self, texts: list[str]) -> Any:
        import numpy as np

        async with self._turn:
            child = self._child
            if child is None or child.returncode is not None:
                child = await self._start()
            assert child.stdin is not None
            assert child.stdout is not None
            try:
                child.stdin.write(json.dumps(texts).encode() + b"\n")
                await child.stdin.drain()
                rows, width = HEADER.unpack(await child.stdout.readexactly(HEADER.size))
                if rows == FAILED:
                    raise ModelFailed((await child.stdout.readexactly(width)).decode())
                data = await child.stdout.readexactly(rows * width * 4)
            except (OSError, asyncio.IncompleteReadError) as error:
                self._child = None
                if child.returncode is None:
                    child.kill()
                await child.wait()
                raise ModelFailed(f"the model's process died: {error!r}") from error
        return np.frombuffer(data, dtype="<f4").reshape(rows, width)

    async def close(self) -> None:
        """Stop the child (its input ends; it exits)."""
        child, self._child = self._child, None
        if child is None or child.returncode is not None:
            return
        assert child.stdin is not None
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 5)
        except TimeoutError:
            child.kill()
            await child.wait()
