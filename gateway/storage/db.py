"""Database engine and schema migrations (Alembic), for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool

from gateway.storage import api_key_tables, audit_tables, flow_tables
from gateway.storage import tables as gateway_tables
from gateway.storage.sqlite_gate import GatedConnection
from registry import tables as registry_tables

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TARGET_METADATA: list[MetaData] = [
    registry_tables.metadata,
    gateway_tables.metadata,
    flow_tables.metadata,
    api_key_tables.metadata,
    audit_tables.metadata,
]
# Any constant works; it only has to be the same in every replica.
_MIGRATION_LOCK_ID = 0x5B0A4D
SQLITE_POOL_SIZE = 32
# Every connection the pool may open is kept: an overflow connection is
# closed at its checkin, and under load (bench.flow_load) that was about one
# new connection a flow run -- TCP, authentication, the codecs and every
# prepared statement again. One worker's share of `database_connections`.
POSTGRES_POOL_SIZE = 30


def create_engine(url: str, pool_size: int = POSTGRES_POOL_SIZE) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # A pool as large as the server's concurrency: a connection opened
            # beyond it (aiosqlite: a thread, the pragmas below) was closed
            # again at its return, about once per flow run under load.
            pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
        # Writers in this process wait for each other on a lock, not in
        # SQLite's sleeping busy handler (`gateway.storage.sqlite_gate`).
        engine = create_async_engine(
            url, connect_args={"timeout": 15, "factory": GatedConnection}, **pool
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
    _ping_when_idle(engine)
    event.listen(engine.sync_engine, "connect", _watch_the_client)
    return engine


# How often a PostgreSQL backend running one of our statements checks that
# its client is still there (`client_connection_check_interval`, PostgreSQL
# 14 and later: "Connections and Authentication").
CLIENT_CHECK_MS = 1000


def _watch_the_client(dbapi_connection: Any, _record: Any) -> None:
    """Have the server give up a statement whose client has gone.

    A statement cancelled twice in a row (anyio's cancel scopes deliver a
    cancellation again at every turn until the task ends) has asyncpg's
    cancel request cut short: the connection is closed (`cursor_sql`
    invalidates it) while its backend goes on waiting, for a row lock, say,
    as long as that lock is held, holding its own locks and a connection
    slot. With the check the backend sees the closed socket and ends within
    `CLIENT_CHECK_MS`. Set on the session, outside any transaction, so no
    rollback undoes it; a server before 14 has no such setting."""
    dbapi_connection.run_async(_check_client_connection)


async def _check_client_connection(connection: Any) -> None:
    if connection.get_server_version().major < 14:
        return
    try:
        await connection.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}")
    except asyncpg.PostgresError as refused:
        # A server that cannot tell a closed socket (Windows; 14 without
        # POLLRDHUP) or a managed one that fixes the setting refuses it: the
        # connection serves as before, without the check.
        _refused_once(str(refused))


@functools.cache
def _refused_once(reason: str) -> None:
    logger.warning("client_connection_check_interval refused by the server: %s", reason)


# A pooled connection back within this long proved itself by its last use;
# one that sat longer is pinged before it is handed out (see below).
PING_IDLE_SECONDS = 0.5
_RETURNED = "switchboard_returned"  # its key in the pool record's ``info``: when it came back
_OPENED = "switchboard_opened"  # and when it was opened
# Per pool: when a statement last found a connection of it gone (`lost`).
_LOST_AT: weakref.WeakKeyDictionary[Pool, float] = weakref.WeakKeyDictionary()


def lost(engine: Engine) -> None:
    """A statement run outside SQLAlchemy's execution found its connection
    gone (`gateway.storage.cursor_sql`): every connection of the pool opened
    before now is replaced at its next checkout, as SQLAlchemy's execution
    has the pool do after a disconnect (SQLAlchemy, "Dealing with
    Disconnects": the pool is invalidated), instead of each failing once."""
    _LOST_AT[engine.pool] = time.monotonic()


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections that sat idle.

    A ping is a round trip before every checkout: under load, with each
    connection back in the pool within milliseconds, it told nothing the
    connection's last statement had not (7% of the gateway's samples in a
    flow-load profile on PostgreSQL). A server restart leaves the pooled
    connections idle while it lasts (longer than `PING_IDLE_SECONDS`), so
    the ones it broke are found here, as before: the first that fails its
    ping has the pool replace it and every connection older than it, as
    ``pool_pre_ping`` does (`InvalidatePoolError` in a checkout; SQLAlchemy,
    "Pool Events", checkout). A cut with no downtime (a proxy restarted)
    is found by the statements of the connections handed out before the
    first failure: each fails once, as an outage; those still pooled are
    replaced at their checkout (`lost`)."""

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:  # None: it was invalidated
            record.info[_RETURNED] = time.monotonic()

    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def _opened(_dbapi_connection: Any, record: Any) -> None:
        record.info[_OPENED] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # The engine's pool of the moment: `dispose` replaces it, listeners kept.
        if record.info.get(_OPENED, 0.0) < _LOST_AT.get(engine.sync_engine.pool, 0.0):
            raise InvalidatePoolError("a connection of the pool was found gone")
        # A connection opened again (or first) has an empty ``info``: no ping.
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned <= PING_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise InvalidatePoolError("a pooled connection did not answer a ping") from error
        if not alive:
            raise InvalidatePoolError("a pooled connection did not answer a ping")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI read (e.g. `token issue`) while the server writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


async def start(
    url: str,
    sealing_secret: str | None,
    stack: contextlib.AsyncExitStack,
    pool_size: int = POSTGRES_POOL_SIZE,
) -> AsyncEngine:
    """The app's engine on an up-to-date schema, disposed when ``stack`` closes."""
    engine = create_engine(url, pool_size)
    stack.push_async_callback(engine.dispose)
    await upgrade(engine, sealing_secret)
    return engine


@contextlib.asynccontextmanager
async def migrated(url: str, sealing_secret: str | None) -> AsyncIterator[AsyncEngine]:
    """An engine on an up-to-date schema, disposed on exit: for processes
    without a running app (the CLI, tools)."""
    engine = create_engine(url)
    try:
        await upgrade(engine, sealing_secret)
        yield engine
    finally:
        await engine.dispose()


async def upgrade(engine: AsyncEngine, sealing_secret: str | None = None) -> None:
    """Apply every pending migration; safe to run from several replicas at once.

    ``sealing_secret`` (the operator's `SWITCHBOARD_SECRET_KEY`) is for the
    migrations that seal values already stored (0009): without it they move
    them as they are, which only a ``--dev`` gateway without a secret can read.
    """
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent upgrades; released when this transaction ends.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        await conn.run_sync(_upgrade_sync, sealing_secret)


def _upgrade_sync(connection: Connection, sealing_secret: str | None) -> None:
    if set(MigrationContext.configure(connection).get_current_heads()) == _script_heads():
        # At the head already (every start but the first after an upgrade):
        # one read of `alembic_version`, not Alembic loading and compiling
        # every migration script to find there is nothing to do.
        return
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["sealing_secret"] = sealing_secret
    command.upgrade(config, "head")


@functools.cache
def _script_heads() -> frozenset[str]:
    """The head revision(s) of the migrations this code ships, read once."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
