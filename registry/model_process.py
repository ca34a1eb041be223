"""Tool search's model in a process of its own.

The model is numpy: a pass is a few hundred array operations, and between
two of them the worker thread running it must take the interpreter's lock
back from the event loop. With the loop busy serving requests, each of
those hand-overs waits for the loop's switch interval (5 ms): measured, a
pass of eight queries took 25 ms alone and over a second beside a busy
thread. In a child process the model has its own interpreter, and the
gateway's loop and the model each run on a core.

The child is started with ``spawn`` (a fork of a threaded server is not
safe), loads the packaged weights once, and answers `embed` calls one at a
time: a caller (a worker thread of the gateway's, see `registry.semantic_leg`)
blocks until its answer comes, the loop does not. If the child dies (killed,
out of memory), the call that was in it fails and the next starts a new one.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from registry.tool_embedder import Embedder, SemanticUnavailable, model_dir

_loaded: Embedder | None = None  # in the child: the model it serves


def _load() -> None:
    global _loaded
    _loaded = Embedder.load()


def _embed(texts: list[str]) -> Any:
    assert _loaded is not None, "the child's initializer loads the model"
    return _loaded.embed(texts)


class ModelProcess:
    """`Embedder.embed` in a child process (same arguments, same answer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = self._start()

    @classmethod
    def load(cls) -> ModelProcess:
        """The child, started and its model loaded (called in a worker
        thread: it takes a second or two). `SemanticUnavailable` when the
        extra is missing or the model does not load."""
        model_dir()  # the extra's absence said here, not as a dead child
        started = cls()
        try:
            started.embed(["ready"])
        except Exception as error:
            started.close()
            reason = f"the model did not load in its process: {error!r}"
            raise SemanticUnavailable(reason) from error
        return started

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_load
        )

    def embed(self, texts: list[str]) -> Any:
        pool = self._pool
        try:
            called = pool.submit(_embed, texts)
        except BrokenProcessPool:  # it died between calls: nothing of this one is lost
            pool = self._replace(pool)
            called = pool.submit(_embed, texts)
        try:
            return called.result()
        except BrokenProcessPool:  # it died in this call, which may be what killed it
            self._replace(pool)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """A new child for ``broken``, unless another caller started one."""
        with self._lock:
            if self._pool is broken:
                self._pool = self._start()
            return self._pool

    def close(self) -> None:
        """Stop the child (a call in it fails)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
