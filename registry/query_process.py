"""Tool search's queries embedded in a process of their own.

A query's pass through the model is some sixty numpy operations on small
arrays, and each gives up the interpreter lock around its arithmetic. In a
worker thread of the gateway's process, every one of them then waits to get
the lock back from the event loop, which holds it while it serves other
requests (up to the interpreter's 5 ms switch interval each time): measured
beside a thread that keeps the interpreter busy, a 4-query pass took 400 ms
instead of 10, and under `bench.tool_catalog`'s searches the gateway used
one core of two. In a process of its own the pass shares no lock with the
requests; the loop only writes the queries to a pipe and reads the vectors
back when they are there (`loop.add_reader`), with no thread in between.

The process is started at the first query, in the background: until it has
loaded the model (about a second), and whenever it cannot answer (it died,
or the model failed on a query), `embed` answers None and the caller embeds
in its own process as before (`registry.query_batches`). A process that died
is started again at most once per `RESTART_SECONDS`. It costs one more copy
of the model's weights in memory (~90 MB). It is a daemon: it ends with the
gateway, and on its own when the gateway's end of the pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from registry.tool_embedder import Embedder

logger = logging.getLogger(__name__)

RESTART_SECONDS = 30.0  # between a process that died and the next one


def _serve(conn: Connection, load: Callable[[], Any]) -> None:
    """The process's whole life: load the model, then embed each batch of
    queries it is sent, answering with its number, until the pipe closes."""
    try:
        embedder = load()
    except Exception as error:
        conn.send((0, "failed", repr(error)))
        return
    conn.send((0, "ready", None))
    while True:
        try:
            number, texts = conn.recv()
        except (EOFError, OSError):
            return  # the gateway is gone
        try:
            conn.send((number, "ok", embedder.embed(texts)))
        except Exception as error:
            conn.send((number, "failed", repr(error)))


class QueryProcess:
    """One process embedding one batch of queries at a time (its caller,
    `registry.query_batches`, sends the next only after the last's answer)."""

    def __init__(self, load: Callable[[], Any] = Embedder.load) -> None:
        # ``load`` runs in the process, which is spawned: it must be a
        # module-level function (pickled by its name).
        self._load = load
        self._process: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._starting: asyncio.Task[None] | None = None
        self._failed_at: float | None = None
        self._numbers = itertools.count(1)
        self._closed = False
        self._reader: asyncio.Future[None] | None = None  # whose wait the pipe's reader ends

    async def embed(self, texts: list[str]) -> Any | None:
        """The queries' vectors, one row each; None when the process cannot
        answer now (starting, gone, or the model failed on these queries)."""
        conn = self._conn
        if not self._ready or conn is None:
            self._start()
            return None
        number = next(self._numbers)
        try:
            conn.send((number, texts))
            while True:
                answered, kind, value = await self._received(conn)
                if answered == number:  # earlier ones: a caller cancelled meanwhile
                    break
        except (EOFError, OSError) as error:
            self._gone(f"its pipe failed: {error!r}")
            return None
        if kind != "ok":
            logger.warning(
                "tool search: the query process failed on %d queries: %s", len(texts), value
            )
            return None
        return value

    async def started(self) -> bool:
        """Start the process unless it is up (or resting after it died), and
        wait until it has loaded the model or failed: whether it answers."""
        if not self._ready:
            self._start()
            if self._starting is not None:
                await asyncio.shield(self._starting)
        return self._ready

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._ready and self._process is not None else None

    def close(self) -> None:
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
        self._stop()

    async def _received(self, conn: Connection) -> Any:
        """The next message on ``conn``, read once it has arrived: the loop
        waits for the pipe to be readable, not a thread."""
        loop = asyncio.get_running_loop()
        while not conn.poll():
            readable: asyncio.Future[None] = loop.create_future()
            self._reader = readable
            loop.add_reader(conn.fileno(), _settle, readable)
            try:
                await readable
            finally:
                # Not another's: a pass cancelled here ends after the next
                # caller has begun to wait (on the same pipe).
                if self._reader is readable:
                    loop.remove_reader(conn.fileno())
                    self._reader = None
        return conn.recv()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        starting = self._starting
        # A start left unfinished by a loop that closed would never end.
        if self._closed or (starting and not starting.done() and starting.get_loop() is loop):
            return
        if self._failed_at is not None and time.monotonic() - self._failed_at < RESTART_SECONDS:
            return
        self._starting = loop.create_task(self._spawn())

    async def _spawn(self) -> None:
        # Spawned, not forked: the gateway's process has threads (the
        # database's, the exporters'), which a fork would copy mid-step.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve, args=(theirs, self._load), name="switchboard-query-embedder", daemon=True
        )
        try:
            await asyncio.to_thread(process.start)
            theirs.close()
            self._process, self._conn = process, ours
            _, kind, value = await self._received(ours)
        except (EOFError, OSError) as error:
            self._gone(f"it did not start: {error!r}")
            return
        if kind != "ready":
            self._gone(f"it could not load the model: {value}")
            return
        self._ready = True

    def _gone(self, why: str) -> None:
        logger.warning("tool search: the query process stopped (%s); embedding queries here", why)
        self._failed_at = time.monotonic()
        self._stop()

    def _stop(self) -> None:
        self._ready = False
        reader, self._reader = self._reader, None
        if reader is not None and self._conn is not None:  # closed while a pass waits
            reader.get_loop().remove_reader(self._conn.fileno())
            reader.cancel()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            with contextlib.suppress(Exception):  # not started, or already reaped
                self._process.kill()
                self._process.join(1)
            self._process = None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
