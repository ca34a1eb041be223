"""Tool search's model in a process of its own: the tools' texts and the
queries are embedded there.

A pass through the model is some sixty numpy operations, and each gives up
the interpreter lock around its arithmetic. In a worker thread of the
gateway's process, every one of them then waits to get the lock back from
the event loop, which holds it while it serves other requests (up to the
interpreter's 5 ms switch interval each time): measured beside a thread
that keeps the interpreter busy, a 4-query pass took 400 ms instead of 10,
and under `bench.tool_catalog`'s searches the gateway used one core of two.
In a process of its own the passes share no lock with the requests; the
loop writes the texts to a pipe and reads the vectors back when they are
there (`loop.add_reader`), with no thread in between.

There, a query goes before tools' texts waiting with it (a search waits for
at most the pass under way). The process is started by the first search,
in the background, and loads the model (about a second); until then, and
whenever it has died, `embed` raises `ModelProcessGone` and search is
lexical. One that died is started again at most once per `RESTART_SECONDS`.
It is a daemon: it ends with the gateway, and on its own when the gateway's
end of the pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from registry.tool_embedder import Embedder, SemanticUnavailable

logger = logging.getLogger(__name__)

RESTART_SECONDS = 30.0  # between a process that died and the next one
# An answer not come by then: the process is taken for stuck (a search must
# not wait for ever, nor every search after it), killed and started again.
ANSWER_SECONDS = 30.0
_READY = 0  # the number of the process's first message: the model is loaded


class ModelProcessGone(RuntimeError):
    """The process is not up: starting, resting after it died, or closed."""


class EmbeddingFailed(RuntimeError):
    """The model failed on these texts (the process is up)."""


def _serve(conn: Connection, load: Callable[[], Any]) -> None:
    """The process's whole life: load the model, then embed what it is sent,
    answering each with its number, until the pipe closes."""
    # Ctrl-C at a terminal reaches the whole group: the gateway's shutdown
    # ends this process, not the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(EOFError, OSError):  # the gateway's end closed: the end
        try:
            embedder = load()
        except SemanticUnavailable as error:
            conn.send((_READY, "unavailable", str(error)))
            return
        except Exception as error:
            conn.send((_READY, "failed", repr(error)))
            return
        conn.send((_READY, "ok", None))
        waiting: deque[tuple[int, bool, list[str]]] = deque()
        while True:
            if not waiting:
                waiting.append(conn.recv())
            while conn.poll():
                waiting.append(conn.recv())
            asked = next((w for w in waiting if w[1]), waiting[0])  # a query first
            waiting.remove(asked)
            number, _, texts = asked
            try:
                vectors = embedder.embed(texts)
            except Exception as error:
                conn.send((number, "failed", repr(error)))
            else:
                conn.send((number, "ok", vectors))


class ModelProcess:
    def __init__(self, load: Callable[[], Any] = Embedder.load) -> None:
        # ``load`` runs in the process, which is spawned: it must be a
        # module-level function (pickled by its name).
        self._load = load
        self._process: Any = None
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._answers: dict[int, asyncio.Future[tuple[str, Any]]] = {}
        self._numbers = itertools.count(_READY + 1)
        self._up = False
        self._starting: asyncio.Task[None] | None = None
        self._died_at: float | None = None
        self._closed = False
        # Set when the model cannot be had there (the extra is missing): for good.
        self.unavailable: str | None = None

    @property
    def up(self) -> bool:
        return self._up

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._up and self._process is not None else None

    async def embed(self, texts: list[str], *, query: bool = True) -> Any:
        """The texts' vectors, one row each. A query goes before tools'
        texts (``query=False``) waiting in the process. Raises
        `ModelProcessGone` (and starts it, unless it rests) when it is not
        up, `EmbeddingFailed` when the model failed on ``texts``."""
        if not self._up or self._loop is not asyncio.get_running_loop():
            self._start()
            raise ModelProcessGone("the model's process is not up")
        assert self._conn is not None
        number = next(self._numbers)
        answer = self._loop.create_future()
        self._answers[number] = answer
        try:
            self._conn.send((number, query, texts))
            kind, value = await asyncio.wait_for(answer, ANSWER_SECONDS)
        except TimeoutError as error:  # before OSError, of which it is one
            self._gone(f"no answer in {ANSWER_SECONDS:g} s")
            raise ModelProcessGone("the model's process is stuck") from error
        except OSError as error:
            self._gone(f"its pipe failed: {error!r}")
            raise ModelProcessGone("the model's process died") from error
        finally:
            self._answers.pop(number, None)
        if kind == "ok":
            return value
        if kind == "gone":
            raise ModelProcessGone("the model's process died")
        raise EmbeddingFailed(value)

    async def started(self) -> bool:
        """Start the process unless it is up (or resting after it died), and
        wait until it has loaded the model or failed: whether it is up."""
        loop = asyncio.get_running_loop()
        if self._closed:
            return False
        if not (self._up and self._loop is loop):
            self._start()
            starting = self._starting
            if starting is not None and not starting.done() and starting.get_loop() is loop:
                await asyncio.shield(starting)
        return self._up and self._loop is loop

    def close(self) -> None:
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
        self._stop()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        starting = self._starting
        if self._closed or self.unavailable is not None:
            return
        if starting is not None and not starting.done() and starting.get_loop() is loop:
            return
        if self._died_at is not None and time.monotonic() - self._died_at < RESTART_SECONDS:
            return
        self._stop()  # one started by a loop that has closed is of no use here
        self._starting = loop.create_task(self._spawn(loop))

    async def _spawn(self, loop: asyncio.AbstractEventLoop) -> None:
        # Spawned, not forked: the gateway's process has threads (the
        # database's, the exporters'), which a fork would copy mid-step.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve, args=(theirs, self._load), name="switchboard-model", daemon=True
        )
        ready = loop.create_future()
        self._answers[_READY] = ready
        try:
            # In line (a fork and exec, a few ms): started in a thread, a
            # close meanwhile would not know of the process to end it.
            process.start()
        except Exception as error:
            self._answers.pop(_READY, None)
            ours.close()
            theirs.close()
            self._gone(f"it did not start: {error!r}")
            return
        theirs.close()
        self._process, self._conn, self._loop = process, ours, loop
        loop.add_reader(ours.fileno(), self._read)
        # uvloop (the gateway's loop) makes a watched descriptor non-blocking;
        # a message read once its first bytes have come must be read whole.
        os.set_blocking(ours.fileno(), True)
        try:
            kind, value = await asyncio.wait_for(ready, ANSWER_SECONDS)
        except TimeoutError:
            kind, value = "failed", f"not ready in {ANSWER_SECONDS:g} s"
        if kind == "ok":
            self._up = True
        elif kind == "unavailable":
            self.unavailable = value
            logger.info("tool search is lexical only: %s", value)
            self._stop()
        elif kind == "failed":
            self._gone(f"it could not load the model: {value}")
        # "gone": it died before it was ready (`_read` said so)

    def _read(self) -> None:
        """Every message that has arrived, to the embed waiting for it (one
        whose caller was cancelled has none: it is dropped)."""
        conn = self._conn
        try:
            while conn is not None and conn.poll():
                number, kind, value = conn.recv()
                answer = self._answers.pop(number, None)
                if answer is not None and not answer.done():
                    answer.set_result((kind, value))
        except Exception as error:  # closed (EOF), or a message not read whole
            self._gone(f"its pipe failed: {error!r}")

    def _gone(self, why: str) -> None:
        logger.warning("tool search: the model's process stopped (%s); search is lexical", why)
        self._died_at = time.monotonic()
        self._stop()

    def _stop(self) -> None:
        self._up = False
        answers, self._answers = self._answers, {}
        for answer in answers.values():
            if not answer.done():
                answer.set_result(("gone", None))
        if self._conn is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        if self._process is not None:
            with contextlib.suppress(Exception):  # not started, or already reaped
                self._process.kill()
                self._process.join(1)
            self._process = None
