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

    def start(self) -> RoundRobin:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._server = future.result(10)
        return self

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, sock=self._sock)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for _ in self.backends:
            port = self.backends[next(self._next)]
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
                self.connections[port] += 1
                break
            except OSError:
                continue  # that replica is down: the next one
        if upstream is None:
            client_w.close()
            return
        up_r, up_w = upstream

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    while chunk := await reader.read(65536):
                        writer.write(chunk)
                        await writer.drain()
            finally:
                with contextlib.suppress(OSError):
                    writer.close()

        await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # Relays still piping hold sockets: cancel them so their writers
            # close here, not as garbage in some later test.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        # The loop's self-pipe is a socketpair: unclosed, it surfaces later as
        # "ResourceWarning: unclosed <socket AF_UNIX>" in whatever test runs gc.
        if not self._thread.is_alive():
            self._loop.close()
