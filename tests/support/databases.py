"""Databases for the tests: the local PostgreSQL's fresh databases, and the
gateway's schema built once per test process and copied.

Every gateway a test starts used to run all the Alembic migrations and DBOS's
own on an empty database (and CREATE, then DROP, a PostgreSQL database). The
schema is now built once per test process -- an SQLite file, and a PostgreSQL
template database -- and each test gets a copy: a file copy on SQLite
(`seed_data_dir`), ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL
(`fresh_database`). The gateway still runs its upgrade at start, which finds
the head and does nothing. A test of the migrations themselves asks for an
empty database (`fresh_database(migrated=False)`, the `unmigrated_database_url`
fixture) and still runs them."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import redis
from dbos import DBOS

from gateway.flows.engine import SCHEMA as DBOS_SCHEMA
from gateway.flows.engine import system_database_url
from gateway.storage.db import migrated

POSTGRES_ADMIN_URL = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
# The file name the gateway gives its SQLite database in its data dir
# (`Settings.effective_database_url`).
SQLITE_FILE = "switchboard.db"


def migrate(url: str) -> None:
    """Apply every migration to ``url`` (from outside any event loop)."""

    async def run() -> None:
        async with migrated(url, None):
            pass

    anyio.run(run)


def _full_schema(url: str) -> None:
    """The gateway's migrations, then DBOS's (which a gateway runs when its
    first flow exists), on ``url``."""
    migrate(url)
    DBOS.migrate(system_database_url(url), schema=DBOS_SCHEMA)


def admin_sql(statement: str) -> None:
    """One statement on the local PostgreSQL, as its admin."""

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _async_url(name: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sweep_dead_processes_databases() -> list[str]:
    """Drop the test databases of test processes that are gone (killed by a
    timeout, say, before their exit handlers ran); the names dropped. Each
    name carries its process's id: ``sb_test_<pid>_...``, ``sb_template_<pid>_...``."""

    async def names() -> list[str]:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database "
                "WHERE datname LIKE 'sb\\_test\\_%' OR datname LIKE 'sb\\_template\\_%'"
            )
        finally:
            await conn.close()
        return [row["datname"] for row in rows]

    dropped = []
    for name in asyncio.run(names()):
        pid, _, rest = name.removeprefix("sb_template_").removeprefix("sb_test_").partition("_")
        if rest and pid.isdigit() and not _alive(int(pid)):
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            dropped.append(name)
    return dropped


@functools.cache
def _postgres_template() -> str:
    """This process's template database on the local PostgreSQL, at the
    schema's head; dropped when the process exits. One per process, so that
    pytest-xdist's workers never copy a template another is still building
    (PostgreSQL refuses to copy a database anyone is connected to). What
    test processes that are gone left behind is dropped first."""
    sweep_dead_processes_databases()
    name = f"sb_template_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    atexit.register(admin_sql, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _full_schema(_async_url(name))
    # Nobody may stay connected to a template (a pool DBOS left behind).
    admin_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 -- our own name
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )
    return name


@contextlib.contextmanager
def fresh_database(*, migrated: bool = True) -> Iterator[str]:
    """A new database on the local PostgreSQL (at the schema's head, unless
    ``migrated`` is false), dropped on exit."""
    name = f"sb_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_postgres_template()}"' if migrated else ""
    admin_sql(f'CREATE DATABASE "{name}"{template}')
    try:
        yield _async_url(name)
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def database_beside(url: str | None) -> Iterator[str | None]:
    """The database of a second deployment beside a module's shared one on
    ``url``: None for None (SQLite, in its own data dir), a fresh database on
    PostgreSQL -- two gateways on one database would share their catalogs."""
    if url is None:
        yield None
        return
    with fresh_database() as own:
        yield own


@functools.cache
def _sqlite_template() -> Path:
    """This process's SQLite file at the schema's head, built once."""
    folder = Path(tempfile.mkdtemp(prefix="sb-schema-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / SQLITE_FILE
    _full_schema(f"sqlite+aiosqlite:///{path}")
    # Everything into the main file, so that copying it copies it all.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def seed_data_dir(data_dir: Path) -> None:
    """Give a gateway's new data dir the schema, unless it has a database
    already (a restart, or a test that prepared one)."""
    target = data_dir / SQLITE_FILE
    if target.exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template(), target)


@contextlib.contextmanager
def coordination_backend(
    kind: str, scratch: Path, redis_url: str
) -> Iterator[tuple[str, str | None]]:
    """A migrated database for the coordination rules' state (``kind``:
    sqlite, postgresql, or redis beside an SQLite database, flushed): its
    URL, and Redis's when the state lives there."""
    if kind == "postgresql":
        with fresh_database() as url:
            yield url, None
        return
    seed_data_dir(scratch)
    url = f"sqlite+aiosqlite:///{scratch / SQLITE_FILE}"
    if kind == "redis":
        redis.Redis.from_url(redis_url).flushdb()
    yield url, redis_url if kind == "redis" else None
