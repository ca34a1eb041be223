"""Servers for the demo: uvicorn in a thread each, on a socket bound first (so an
app can know its own URL), and the sample agents loaded from ``examples/``."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn

import gateway


class DemoError(Exception):
    pass


def examples_dir() -> Path:
    """``examples/`` of the source checkout this package runs from (an editable
    install), or ``$SWITCHBOARD_EXAMPLES``."""
    configured = os.environ.get("SWITCHBOARD_EXAMPLES")
    found = (
        Path(configured) if configured else Path(gateway.__file__).resolve().parents[1] / "examples"
    )
    if not (found / "support_agent" / "agent.py").is_file():
        raise DemoError(
            f"the sample agents are not in {found}: the demo runs from a source checkout "
            "(git clone, then pip install -e .), or set SWITCHBOARD_EXAMPLES to its examples/"
        )
    return found


def load_example(name: str, filename: str) -> ModuleType:
    path = examples_dir() / name / filename
    spec = importlib.util.spec_from_file_location(f"switchboard_example_{name}", path)
    if spec is None or spec.loader is None:
        raise DemoError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bound_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket on ``host`` (``port``, or any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DemoError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


async def serve_then_close(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
    """``server.serve(sockets)``, then abort every connection it left open.

    uvicorn asks each open connection to close once, as it begins to shut
    down, and leaves open one still busy when its graceful timeout runs out
    (a client's event stream), or accepted just after it asked. Its socket
    would be closed only by the garbage collector, with a ResourceWarning
    (an error in the test suite, in whichever test collects it)."""
    try:
        await server.serve(sockets=sockets)
    finally:
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)  # an abort closes its socket on the next iteration


class Server:
    """An ASGI app under uvicorn in a daemon thread, until `stop()`."""

    def __init__(self, name: str, sock: socket.socket | None = None) -> None:
        self.name = name
        self.sock = sock or bound_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, app: Any, timeout: float = 30) -> Server:
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        self._server = server = uvicorn.Server(config)

        def run() -> None:
            try:
                asyncio.run(serve_then_close(server, [self.sock]))
            except BaseException as exc:  # reported by start()
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"demo-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise DemoError(f"{self.name} did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise DemoError(f"{self.name} did not start within {timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self.sock.close()


NOISY_LOGGERS = ("httpx", "httpx2", "mcp", "gateway", "uvicorn", "a2a", "alembic")


def quiet_libraries() -> None:
    """The demo's own lines only: the libraries' INFO logging (the mcp SDK
    turns it on for the process when a server is built) is not the story,
    nor the security log of the refusal the story makes on purpose."""
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The gateway in this process logs each denial as a security warning; the
    # story refuses a call on purpose and shows it from the audit log, so
    # the warning would only repeat it. Errors still show.
    logging.getLogger("switchboard.security").setLevel(logging.ERROR)


def console_lines(gateway_url: str) -> list[str]:
    """Where the console is and how to log in to the demo's dev-mode gateway."""
    return [
        f"  console     {gateway_url}/ui",
        "              log in with any user name and scopes (dev mode): e.g. maria with",
        "              switchboard:admin to see every run, the audit and the approvals desk",
    ]


def wait_for_ctrl_c(out: Callable[[str], None]) -> None:
    out("\nCtrl-C stops everything.")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out("\nstopping")
