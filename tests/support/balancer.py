"""A round-robin TCP balancer for tests with several replicas, as a load
balancer without session affinity would spread them: each connection goes to
the next replica in turn. A replica that refuses the connection (it is dead)
is skipped for the next one, as nginx does with `proxy_next_upstream error`;
a connection already open to a replica that dies is dropped, as anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Sequence

from tests.support.servers import bound_socket


class RoundRobin:
    def __init__(self, backends: Sequence[int]) -> None:
        self.backends = list(backends)
        self._next = itertools.cycle(range(len(self.backends)))
        self._sock = bound_socket()
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.connections: dict[int, int] = dict.fromkeys(self.backends, 0)  # per backend port
        self.dialling: dict[int, int] = dict.fromkeys(self.backends, 0)  # relays connecting now
        self._writers: set[asyncio.StreamWriter] = set()  # every socket open, both sides

    def start(self) -> RoundRobin:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._server = future.result(10)
        return self

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, sock=self._sock)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # Each socket is closed however the relay ends -- a cancel at `stop`
        # included, even one that lands while the replica is being dialled --
        # so none is left to surface as a ResourceWarning in a later test.
        self._writers.add(client_w)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            upstream = await self._dial()
            if upstream is None:
                return
            up_r, up_w = upstream
            self._writers.add(up_w)
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self._close(client_w)
            if upstream is not None:
                self._close(upstream[1])

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.backends:
            port = self.backends[next(self._next)]
            self.dialling[port] += 1
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue  # that replica is down: the next one
            finally:
                self.dialling[port] -= 1
            self.connections[port] += 1
            return upstream
        return None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
        finally:
            self._close(writer)

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        with contextlib.suppress(OSError):
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # Relays still piping hold sockets: cancel them so their writers
            # close here, not as garbage in some later test. Until none is
            # left: a connection accepted just before the close starts its
            # relay a loop iteration later, after the first look.
            while others := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
            await asyncio.sleep(0)  # the aborts close their sockets on the next iteration

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        # The loop's self-pipe is a socketpair: unclosed, it surfaces later as
        # "ResourceWarning: unclosed <socket AF_UNIX>" in whatever test runs gc.
        if not self._thread.is_alive():
            self._loop.close()
