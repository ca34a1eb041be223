"""The tests' own databases: what a killed test process left on the local
PostgreSQL is dropped by the next one, and nothing of a live process is."""

from __future__ import annotations

import asyncio
import os
import subprocess

import asyncpg
import pytest

from tests.support.databases import (
    POSTGRES_ADMIN_URL,
    admin_sql,
    sweep_dead_processes_databases,
)

pytestmark = pytest.mark.postgres


def _exists(name: str) -> bool:
    async def look() -> bool:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        finally:
            await conn.close()

    return asyncio.run(look())


def test_a_gone_processs_databases_are_dropped_and_a_live_ones_kept() -> None:
    with subprocess.Popen(["true"]) as gone:
        gone.wait()
    dead = [f"sb_test_{gone.pid}_sweepme", f"sb_template_{gone.pid}_sweepme"]
    live = f"sb_test_{os.getpid()}_keepme"
    for name in [*dead, live]:
        admin_sql(f'CREATE DATABASE "{name}"')
    try:
        dropped = sweep_dead_processes_databases()
        assert set(dead) <= set(dropped)
        assert live not in dropped
        assert not any(_exists(name) for name in dead)
        assert _exists(live)
    finally:
        for name in [*dead, live]:
            admin_sql(f'DROP DATABASE IF EXISTS "{name}"')
