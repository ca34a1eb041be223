"""A database brought up to the gateway's schema, for tests that use the
stores without a running gateway."""

from __future__ import annotations

import anyio

from gateway.storage.db import migrated


def migrate(url: str) -> None:
    """Apply every migration to ``url`` (from outside any event loop)."""

    async def run() -> None:
        async with migrated(url, None):
            pass

    anyio.run(run)
