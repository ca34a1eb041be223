"""A fresh PostgreSQL database for one bench run, dropped afterwards.

    with fresh_database("postgresql://postgres@127.0.0.1:5432", "bench_x") as url:
        ...  # url: postgresql+asyncpg://.../bench_x_<random>

``server`` is any URL that names the PostgreSQL server (its driver and
database part are ignored); the database is created and dropped from the
server's `postgres` database. The URL handed out uses asyncpg; a caller that
needs another driver sets its own (`url.set(drivername=...)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
from sqlalchemy.engine import URL, make_url


def _names(server: str, prefix: str) -> tuple[str, str, URL]:
    """(the admin DSN for asyncpg, the new database's name, its URL)."""
    url = make_url(server)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = url.set(drivername="postgresql", database="postgres")
    fresh = url.set(drivername="postgresql+asyncpg", database=name)
    return admin.render_as_string(hide_password=False), name, fresh


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def afresh_database(server: str, prefix: str) -> AsyncIterator[URL]:
    """`fresh_database` for a caller already inside an event loop."""
    dsn, name, url = _names(server, prefix)
    await _admin(dsn, f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        await _admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(server: str, prefix: str) -> Iterator[URL]:
    """A database named ``prefix`` + a random tail on ``server``; its URL."""
    dsn, name, url = _names(server, prefix)
    asyncio.run(_admin(dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield url
    finally:
        asyncio.run(_admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
