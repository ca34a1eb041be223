"""The replicas running now: each one's id, where its siblings reach it, and
whether it is alive -- one row per replica in `gateway_replicas`, renewed
while it runs.

Two things hang on a replica's identity. A 2025-11-25 MCP session lives in
the replica that opened it, and its id names that replica
(`gateway.mcp.replicas`). A flow run is a DBOS workflow owned by the replica
that runs it (its DBOS executor id is the replica id), and the runs of a
replica that is gone are taken over by a live one (`gateway.flows.takeover`).

The id is `replica_id` when it is set -- a StatefulSet pod's name, say: the
same replica restarted takes its own unfinished runs back at once -- else a
random one per process. A row not renewed for `stale_seconds` is a replica
that is gone (a SIGKILL leaves its row behind; a clean stop deletes it).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import gateway_replicas

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 45.0  # more than three missed heartbeats: that replica is gone
_CACHE_SECONDS = 5.0


def random_replica_id() -> str:
    return secrets.token_hex(6)


class ReplicaDirectory:
    """This replica's id and address, and the others', from the database."""

    def __init__(
        self,
        url: str,
        *,
        replica_id: str | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self.id = replica_id or random_replica_id()
        self.url = url
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.engine: AsyncEngine | None = None
        self._known: dict[str, tuple[str | None, float]] = {}

    async def announce(self, engine: AsyncEngine) -> None:
        self.engine = engine
        await self._renew()

    async def _renew(self) -> None:
        assert self.engine is not None
        row = {"id": self.id, "url": self.url, "seen_at": datetime.now(UTC)}
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(gateway_replicas).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["id"], set_={"url": row["url"], "seen_at": row["seen_at"]}
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def renew(self) -> None:
        """Renew this replica's row (every ``heartbeat_seconds`` while it runs;
        a database outage only delays it: the row is stale later, not wrong)."""
        await self._renew()

    async def withdraw(self) -> None:
        if self.engine is not None:
            with contextlib.suppress(Exception):
                async with self.engine.begin() as conn:
                    await conn.execute(
                        delete(gateway_replicas).where(gateway_replicas.c.id == self.id)
                    )

    def _fresh_since(self) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self.stale_seconds)

    async def live_ids(self) -> set[str]:
        """The replicas renewed lately, this one always included."""
        live = {self.id}
        if self.engine is not None:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(select(gateway_replicas.c.id, gateway_replicas.c.seen_at))
                ).all()
            since = self._fresh_since()
            live.update(str(row.id) for row in rows if _utc(row.seen_at) >= since)
        return live

    async def url_of(self, replica_id: str) -> str | None:
        """Where replica ``replica_id`` is reached, if it is running."""
        now = time.monotonic()
        known = self._known.get(replica_id)
        if known is not None and now - known[1] < _CACHE_SECONDS:
            return known[0]
        url: str | None = None
        if self.engine is not None:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(gateway_replicas.c.url, gateway_replicas.c.seen_at).where(
                            gateway_replicas.c.id == replica_id
                        )
                    )
                ).first()
            if row is not None and _utc(row.seen_at) >= self._fresh_since():
                url = str(row.url)
        if len(self._known) > 1000:
            self._known.clear()
        self._known[replica_id] = (url, now)
        return url

    def forget(self, replica_id: str) -> None:
        self._known.pop(replica_id, None)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
