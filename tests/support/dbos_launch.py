"""A real DBOS for a test of the gateway's own DBOS glue: launched off the
event loop on an SQLite file, as the flow engine launches it, and destroyed
after (`gateway.flows.engine`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from dbos import DBOS, DBOSConfig


@contextlib.asynccontextmanager
async def launched_dbos(tmp_path: Path, name: str) -> AsyncIterator[None]:
    config: DBOSConfig = {
        "name": name,
        "system_database_url": f"sqlite:///{tmp_path / 'dbos.db'}",
        "enable_otlp": False,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    await asyncio.to_thread(DBOS.launch)
    try:
        yield
    finally:
        await asyncio.to_thread(DBOS.destroy)
