"""Another replica's writes heard, not polled for (PostgreSQL).

A replica learns of what another one changed -- a set, the catalog, an
agent, an MCP server, a stored policy -- by
reading the tables it keeps copies of (`gateway.storage.periodic`,
`paced_by_company`). While other replicas run, each such job read its tables
every few seconds: with ten replicas idle, tens of statements a second on
the shared database for nothing.

On PostgreSQL the database says so itself: a statement trigger on each of
those tables (migration 0040) sends ``NOTIFY switchboard_changes, '<table>'``
with the writing transaction's commit (PostgreSQL's NOTIFY: delivered on
commit, never for a rolled-back write), whoever wrote -- another replica, a
`switchboard` command, an operator's SQL. `ChangeBell` holds one connection
that LISTENs and wakes the jobs that read the table named. While it is
heard (`heard`), those jobs need not look on a timer: `gateway.app` paces
them as if this replica were alone (once a minute, a safety look for a
notice lost). While it is not -- SQLite, a lost connection until it is back
-- they look at their own interval, as before. A reconnect wakes every job
once: what was written while nobody listened was not heard. The listener
proves its path every `PROBE_SECONDS` with a notice sent through the
gateway's pool (another session), so a pool that drops notices between
sessions (PgBouncer's transaction mode) is not taken for one that carries
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

CHANNEL = "switchboard_changes"
# What the migration puts a trigger on: the tables replicas keep copies of.
TABLES = (
    "agents",
    "mcp_sets",
    "mcp_tools",
    "mcp_servers",
    "policy_versions",
)
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
# How often a notice is sent through the gateway's pool and waited for on
# the listener: a connection lost without a word (a partition: no FIN, no
# termination notice) is found so, and so is a path whose notices do not
# come back -- a transaction-mode pool (PgBouncer) accepts LISTEN but
# delivers nothing from other sessions.
PROBE_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 10.0


class Spaced:
    """Calls ``wake`` at most once every ``seconds``: a notice in the meantime
    wakes it once when they have passed. Writes under load (a run's row at
    every step) would otherwise wake a job back to back, more often than
    the interval it looked at before it was told."""

    def __init__(self, wake: Callable[[], None], seconds: float) -> None:
        self._wake = wake
        self._seconds = seconds
        self._last = float("-inf")
        self._pending: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self._pending is not None:
            return
        wait = self._last + self._seconds - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._pending = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self._wake()


class NotHeard(Exception):
    """The connection's own notice did not come back."""


class ChangeBell:
    """One LISTEN connection; ``on(table, wake)`` is called on each notice
    naming ``table`` (and on every reconnect)."""

    def __init__(self, engine: AsyncEngine) -> None:
        """``engine``: the gateway's. The listening connection is made as its
        are (the same URL and options, outside its pool); the probe's notice
        goes through its pool, another session than the listener's."""
        self.enabled = engine.dialect.name == "postgresql"
        self._engine = engine
        self._wakes: dict[str, list[Callable[[], None]]] = {}
        self._session: AsyncConnection | None = None  # the listener's, while it listens
        self._connection: Any = None  # its asyncpg connection
        self._lost = asyncio.Event()
        self._probe_payload: str | None = None
        self._echo = asyncio.Event()
        self._warned = False

    def on(self, table: str, wake: Callable[[], None]) -> None:
        if table not in TABLES:
            raise ValueError(f"no trigger on {table!r}: add it to bell.TABLES and a migration")
        self._wakes.setdefault(table, []).append(wake)

    def heard(self) -> bool:
        """Whether a write to the tables now reaches this replica as a notice."""
        return self._connection is not None and not self._connection.is_closed()

    async def run_forever(self) -> None:
        """Listen; on a lost connection, listen again after a backoff."""
        if not self.enabled:
            return
        # One engine for every listen, disposed when the bell stops: NullPool,
        # so each listen is a session of its own and none is kept between.
        listener = create_async_engine(self._engine.url, poolclass=NullPool)
        try:
            await self._listen_forever(listener)
        finally:
            await asyncio.shield(listener.dispose())

    async def _listen_forever(self, listener: AsyncEngine) -> None:
        failures = 0
        while True:
            try:
                await self._listen(listener)
                failures = 0
                while not await self._lost_within(PROBE_SECONDS):
                    await self._probe()
            except NotHeard:
                log = logger.info if self._warned else logger.warning
                self._warned = True
                log(
                    "change notices sent are not heard back (a transaction-mode pool?): "
                    "jobs look for other replicas' changes on their timers"
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, SQLAlchemyError) as exc:
                logger.info("change notices not heard (%s): jobs look on their timers", exc)
            finally:
                await self._close()
            delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    async def _listen(self, listener: AsyncEngine) -> None:
        self._lost.clear()
        session = await listener.connect()
        try:
            connection = (await session.get_raw_connection()).driver_connection
            assert connection is not None
            connection.add_termination_listener(lambda _c: self._lost.set())
            await connection.add_listener(CHANNEL, self._heard)
            await self._probe()
        except BaseException:
            await asyncio.shield(session.close())
            raise
        self._session, self._connection = session, connection
        # Written while nobody listened: not heard. Every job looks once.
        for wakes in self._wakes.values():
            for wake in wakes:
                wake()

    async def _lost_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._lost.wait()
                return True
        return False

    async def _probe(self) -> None:
        """A notice sent through the gateway's pool -- another session than
        the listener's, as another replica's would be -- heard back within
        the timeout. (A session always hears its own notices: sent on the
        listener, a probe would pass where others' notices are lost.)"""
        self._probe_payload = f"probe {secrets.token_hex(8)}"
        self._echo.clear()
        async with self._engine.begin() as conn:
            statement = text("SELECT pg_notify(:channel, :payload)")
            await conn.execute(statement, {"channel": CHANNEL, "payload": self._probe_payload})
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                await self._echo.wait()
        except TimeoutError:
            raise NotHeard from None

    def _heard(self, _connection: Any, _pid: int, _channel: str, table: str) -> None:
        if table == self._probe_payload:
            self._echo.set()
            return
        for wake in self._wakes.get(table, ()):
            wake()

    async def _close(self) -> None:
        session, self._session, self._connection = self._session, None, None
        if session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.close(), 5)
