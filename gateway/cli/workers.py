"""`switchboard serve --workers N`: N gateway processes behind one port.

The supervisor is uvicorn's own (`uvicorn.supervisors.Multiprocess`): it
binds the port once, spawns N processes that accept on it, pings them, and
starts a new one in place of any that dies or hangs. This module only says
what each process serves (`worker_app`, run in the child by uvicorn as an app
factory) and what the parent does around the supervisor.

Each worker is a replica in every respect that matters across replicas
(docs/deployment.md): its own replica id, hence its own DBOS executor for
flow runs and its own prefix on the 2025-11-25 MCP session ids it hands out,
and its own address in `gateway_replicas`. That address cannot be the shared
port -- the kernel hands a connection to any worker -- so each worker also
listens on a port of its own (same host, a free port) and announces that:
a request for a session another worker holds is passed on to it there, as
between replicas, and authenticated again there like any request.

A configured `replica_id` gets the worker's number as a suffix
(`gw-a` -> `gw-a-1`, `gw-a-2`). The number is a slot taken with an advisory
file lock the kernel releases when the process dies, so a worker that
crashed is replaced under the same id and takes its own unfinished flow runs
back at once, as a restarted replica does. Without `replica_id`, each worker
has a random id, and a dead worker's runs are taken over by the others after
`replica_stale_seconds`.

The settings reach the children as they are, pickled with uvicorn's config
(the factory's arguments), not parsed again: a worker restarted an hour later
serves with the settings its siblings have, even if the file has changed.

The parent migrates the database and creates the signing key before any
worker starts (so two workers never race to create one), serves
`metrics_port` itself, and keeps Prometheus' multiprocess directory, where
every worker's counters are kept and summed (`gateway.observability.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import itertools
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from gateway.app import create_app
from gateway.observability import metrics
from gateway.settings import Settings
from gateway.storage import runstate


def serve(settings: Settings, *, log_level: str, log_config: dict[str, Any]) -> int:
    """Run ``settings.workers`` gateway processes until SIGINT/SIGTERM; the exit code."""
    scratch = Path(tempfile.mkdtemp(prefix="switchboard-workers-"))
    slots = scratch / "slots"
    slots.mkdir()
    # prometheus-client picks its multiprocess mode from the environment when
    # it is imported; the spawned workers inherit it from here.
    os.environ[metrics.MULTIPROCESS_ENV] = str(scratch / "metrics")
    (scratch / "metrics").mkdir()
    children = settings.model_copy(update={"metrics_port": None})  # served here, once
    config = uvicorn.Config(
        functools.partial(worker_app, children, slots),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=log_level,
        log_config=log_config,
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_drain_seconds,
        # The supervisor takes a worker that does not answer its ping within
        # this for hung and replaces it; a worker starting on a busy machine
        # (imports, migrations check, the flow engine) can take several seconds.
        timeout_worker_healthcheck=30,
    )
    listener = config.bind_socket()
    supervisor = Multiprocess(config, sockets=[listener])
    try:
        with contextlib.ExitStack() as stack:
            if settings.metrics_port is not None:
                metrics.serve_aggregate(settings.metrics_port, settings.host, stack)
            # The CLI's run state names this process: it outlives every worker.
            if runstate.write(settings):
                stack.callback(runstate.remove, settings)
            supervisor.run()
    finally:
        listener.close()
        shutil.rmtree(scratch, ignore_errors=True)
    # A worker that cannot start (a database it cannot reach, a port taken)
    # stops the supervisor, and the command fails as a single process would.
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return 1 if failed else 0


def worker_app(settings: Settings, slots: Path) -> FastAPI:
    """One worker's app (uvicorn's factory, called in the child)."""
    slot, lock = _claim_slot(slots)
    private = _listen(settings.host)
    port = int(private.getsockname()[1])
    own = settings.model_copy(
        update={
            "replica_id": f"{settings.replica_id}-{slot}" if settings.replica_id else None,
            "replica_url": _with_port(settings.effective_replica_url, port),
        }
    )
    app = create_app(own)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state, _serving(app, private, settings.shutdown_drain_seconds):
            # The slot's lock is held for the process's life (released by
            # the kernel however the process ends).
            assert not lock.closed
            yield state

    app.router.lifespan_context = lifespan
    return app


def _claim_slot(slots: Path) -> tuple[int, IO[str]]:
    """The lowest worker number no live worker holds, and its lock."""
    for slot in itertools.count(1):
        handle = (slots / f"worker-{slot}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return slot, handle
    raise AssertionError("unreachable")  # pragma: no cover


def _listen(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


def _with_port(url: str, port: int) -> str:
    """``url`` (where the replicas reach this machine) at ``port``."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", "")).rstrip("/")


class _SiblingServer(uvicorn.Server):
    """The worker's own port, served by the app the shared port serves."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker's main server takes SIGTERM/SIGINT and stops this one
        # from its shutdown; handlers installed here would take them from it.
        yield


@contextlib.asynccontextmanager
async def _serving(app: FastAPI, sock: socket.socket, drain: int) -> AsyncIterator[None]:
    server = _SiblingServer(
        uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            proxy_headers=False,
            timeout_graceful_shutdown=drain,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="worker-port")
    try:
        yield
    finally:
        server.should_exit = True
        await task
