"""Real HTTP servers on 127.0.0.1 for tests: uvicorn in a thread, on a socket bound first.

Binding before the app is built means the app can know its own URL (an
agent card must name where it is served) and no other process can take the
port in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import itertools
import os
import random
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import uvicorn

from gateway.demo.servers import serve_then_close
from tests.support.waiting import wait_for

# The ports this process's servers take: a band of its own (by its xdist
# worker), below the system's ephemeral range (32768-60999 on Linux). A port
# the system hands out is the lowest free one near the last given, to any
# process: a server a test stopped frees a port that another worker's next
# server may be given while a gateway there still sends to the old one -- it
# then answers a call meant to fail, or counts a message meant for another
# test (seen in CI). Within the band, ports are taken in turn, so one comes
# back only after the band's other 999 were used. The bands end where
# `gateway.demo.ports.PortReservation` begins (20000): a gateway process's
# port is free between a kill and its restart, and must stay so.
PORT_BAND = 1_000
FIRST_PORT = 10_000
BANDS = 10  # 10000-19999: workers gw0-gw8 and a run without workers (the last)


def _band() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = worker.removeprefix("gw")
    return int(digits) % (BANDS - 1) if digits.isdigit() else BANDS - 1


_BAND_START = FIRST_PORT + _band() * PORT_BAND
# From a random place in the band: two suites run at once on one machine (a
# developer's beside CI's) share the bands, and from the same place their
# workers would take the same ports in step -- a stopped agent's port taken
# at once by the other suite's next server (suspected where a test of a
# dead agent was answered "task unknown"). Not from `random`'s state, which
# a plugin may seed alike in both.
_OFFSET = random.SystemRandom().randrange(PORT_BAND)
_NEXT_PORTS = itertools.cycle(
    [
        *range(_BAND_START + _OFFSET, _BAND_START + PORT_BAND),
        *range(_BAND_START, _BAND_START + _OFFSET),
    ]
)
_PORTS_LOCK = threading.Lock()


def bound_socket(
    family: socket.AddressFamily = socket.AF_INET, host: str = "127.0.0.1", port: int = 0
) -> socket.socket:
    """A listening socket on ``port``, or (0) on the next free port of this
    process's band."""
    if port:
        return _bound(family, host, port)
    for _ in range(PORT_BAND):
        with _PORTS_LOCK:
            candidate = next(_NEXT_PORTS)
        try:
            return _bound(family, host, candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free port in {_BAND_START}-{_BAND_START + PORT_BAND}")


def _bound(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets it
    # recognises as TCP; without it every keep-alive request waits ~40 ms for
    # a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def refusing_port() -> socket.socket:
    """A port on 127.0.0.1 that refuses every connection while the returned
    socket is open: bound (without SO_REUSEADDR) and never listening, so no
    other server is given it meanwhile -- unlike a stopped server's port,
    which the system may hand to the next server started, one that answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind(("127.0.0.1", 0))
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, woken by `ServerThread.request_stop` at once rather than
    on its next 0.1 s tick (stopping is most of a short test's teardown)."""

    wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        # uvicorn's own loop, with the tick's sleep made interruptible.
        self.wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)


class ServerThread:
    """Runs ``build(base_url)`` under uvicorn until ``stop()``; usable as a context manager."""

    def __init__(
        self,
        build: Callable[[str], Any],
        *,
        sock: socket.socket | None = None,
        also_ipv6: bool = False,
    ) -> None:
        self.sock = sock or bound_socket()
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.sockets = [self.sock]
        if also_ipv6 and socket.has_ipv6:
            # ::1 on the same port, so "localhost" works whichever address resolves first.
            with contextlib.suppress(OSError):
                self.sockets.append(bound_socket(socket.AF_INET6, "::1", self.port))
        self.app = build(self.url)
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        self.server = _Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        try:
            with asyncio.Runner() as runner:
                self.loop = runner.get_loop()
                runner.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    async def _serve(self) -> None:
        await serve_then_close(self.server, self.sockets)

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        """Run ``coroutine`` on the server's own event loop (to use its app's
        Python API as the app itself would) and return its result."""
        assert self.loop is not None, "the server is not running"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> ServerThread:
        self._thread.start()

        def started() -> bool:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self._error!r}")
            return self.server.started

        wait_for(started, seconds=30, every=0.02, what="the server did not start")
        return self

    def request_stop(self) -> None:
        """Ask the server to stop, without waiting (`stop_all` stops several at once)."""
        self.server.should_exit = True
        wake, loop = self.server.wake, self.loop
        if wake is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        self.request_stop()
        self._thread.join(timeout=15)
        for sock in self.sockets:
            sock.close()
        assert not self._thread.is_alive(), (
            # Where it hangs (a lifespan shutdown waiting on something), so
            # a rare hang says its cause the first time it is seen: the
            # thread (usually idle in its loop's select) and what the loop's
            # tasks wait for.
            f"server thread of {self.url} did not stop; it is at:\n"
            + "".join(
                traceback.format_stack(sys._current_frames().get(self._thread.ident or 0))
                if self._thread.ident in sys._current_frames()
                else ["(no frame)"]
            )
            + "its loop's tasks:\n"
            + self._pending_tasks()
        )
        assert self._error is None, f"server crashed: {self._error!r}"

    def _pending_tasks(self) -> str:
        """The server loop's tasks and where each waits, asked of the loop itself."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return "(no loop)\n"
        found: list[str] = []
        answered = threading.Event()

        def collect() -> None:
            for task in asyncio.all_tasks(loop):
                stack = io.StringIO()
                task.print_stack(limit=12, file=stack)
                found.append(stack.getvalue())
            answered.set()

        try:
            loop.call_soon_threadsafe(collect)
        except RuntimeError:
            return "(the loop closed)\n"
        return "".join(found) if answered.wait(5) else "(the loop did not answer)\n"

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(*servers: ServerThread) -> None:
    """Stop every server, in parallel: each takes a good 0.1 s to shut down."""
    for server in servers:
        server.request_stop()
    for server in servers:
        server.stop()
