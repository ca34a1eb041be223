"""The tests' own servers close every socket they accepted when they stop.

A socket left open is collected later, in whichever test runs the garbage
collector then, and fails that test with a ResourceWarning (the suite runs
with warnings as errors): a flake far from its cause. These count the
process's open file descriptors around a server's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator

import pytest

from gateway.demo.servers import Server
from tests.support.balancer import RoundRobin
from tests.support.servers import ServerThread, bound_socket
from tests.support.waiting import wait_for


def sockets_on(port: int) -> list[str]:
    """This process's open TCP sockets whose local port is ``port``, as
    /proc/net/tcp lists them (listening and accepted alike)."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                mine.add(target[len("socket:[") : -1])
    found = []
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port and fields[9] in mine:
                found.append(line.strip())
    return found


def wait_until_closed(port: int, timeout: float = 10) -> None:
    wait_for(lambda: not sockets_on(port), timeout, every=0.02, what=f"no socket left on {port}")


@contextlib.contextmanager
def clients(port: int, count: int, request: bytes = b"") -> Iterator[list[socket.socket]]:
    opened = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    try:
        for sock in opened:
            if request:
                sock.sendall(request)
        yield opened
    finally:
        for sock in opened:
            sock.close()


async def streaming_app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await asyncio.sleep(3600)  # a stream that outlives the server's graceful timeout


class DemoServer:
    """The demo's `Server` (the connected-accounts tests' vendor runs on it)
    with the handles of the tests' own `ServerThread`."""

    def __init__(self) -> None:
        self.server = Server("streaming").start(streaming_app)
        self.port: int = self.server.sock.getsockname()[1]

    def stop(self) -> None:
        self.server.stop()


@pytest.mark.parametrize("kind", ["tests", "demo"])
def test_a_server_stopped_with_streams_open_closes_their_sockets(kind: str) -> None:
    server = ServerThread(lambda url: streaming_app).start() if kind == "tests" else DemoServer()
    with clients(server.port, 3, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n") as opened:
        for sock in opened:
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        assert len(sockets_on(server.port)) == 1 + len(opened)  # listening, accepted
        server.stop()
        # Ours stay open meanwhile: the server's side must close regardless.
        wait_until_closed(server.port)


def test_a_balancer_stopped_mid_relay_and_mid_dial_closes_every_socket() -> None:
    server = ServerThread(lambda url: streaming_app).start()
    # A replica whose backlog is full: a connection to it is never accepted,
    # so a relay dialling it is still dialling when the balancer stops.
    stuck = bound_socket()
    stuck.listen(0)
    filler = [socket.socket() for _ in range(3)]
    for sock in filler:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", stuck.getsockname()[1]))
    relaying = RoundRobin([server.port]).start()
    dialling = RoundRobin([stuck.getsockname()[1]]).start()
    try:
        with (
            clients(relaying.port, 2, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n") as piped,
            clients(dialling.port, 2) as waiting,
        ):
            for sock in piped:
                assert sock.recv(1024).startswith(b"HTTP/1.1 200")
            wait_for(
                lambda: sum(dialling.dialling.values()) >= len(waiting),
                10,
                every=0.02,
                what="every waiting client dialling",
            )
            assert sum(dialling.dialling.values()) == len(waiting)
            assert len(sockets_on(dialling.port)) == 1 + len(waiting)
            relaying.stop()
            dialling.stop()
            server.stop()
            # Ours stay open meanwhile: the balancers' side must close regardless.
            wait_until_closed(relaying.port)
            wait_until_closed(dialling.port)
            wait_until_closed(server.port)
    finally:
        stuck.close()
        for sock in filler:
            sock.close()
