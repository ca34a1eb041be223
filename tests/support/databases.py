"""A database brought up to the gateway's schema, for tests that use the
stores without a running gateway."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import redis

from gateway.storage.db import migrated


def migrate(url: str) -> None:
    """Apply every migration to ``url`` (from outside any event loop)."""

    async def run() -> None:
        async with migrated(url, None):
            pass

    anyio.run(run)


@contextlib.contextmanager
def coordination_backend(
    kind: str, scratch: Path, redis_url: str
) -> Iterator[tuple[str, str | None]]:
    """A migrated database for the coordination rules' state (``kind``:
    sqlite, postgresql, or redis beside an SQLite database, flushed): its
    URL, and Redis's when the state lives there."""
    if kind == "postgresql":
        from tests.conftest import _fresh_database

        with _fresh_database() as url:
            migrate(url)
            yield url, None
        return
    url = f"sqlite+aiosqlite:///{scratch / 'state.db'}"
    migrate(url)
    if kind == "redis":
        redis.Redis.from_url(redis_url).flushdb()
    yield url, redis_url if kind == "redis" else None
