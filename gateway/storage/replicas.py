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

A database outage is not a death. While the database is away no replica
renews its row, so once it is back every other row looks stale, and the
first replica to look would take over runs that are alive in their own
replicas -- two replicas running one run. So this replica judges others
gone (`gone`) only while it has itself renewed its own row at every
heartbeat for a whole `stale_seconds` (the window in which the others had
the same chance to renew theirs): not for that long after an outage, after
a pass that hung, or after it started. The gateway-run tasks' leases keep
the same rule (`gateway.delegation.task_runner`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = replica_id or random_replica_id()
        self.url = url
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.engine: AsyncEngine | None = None
        self._known: dict[str, tuple[str | None, float]] = {}
        self._clock = clock
        # This replica's own renewals: the last that succeeded, and since when
        # they have come at every heartbeat (None: not once yet).
        self._renewed_at: float | None = None
        self._steady_since: float | None = None

    async def announce(self, engine: AsyncEngine) -> None:
        self.engine = engine
        await self._renew()

    async def _renew(self) -> None:
        assert self.engine is not None
        started = self._clock()
        row = {"id": self.id, "url": self.url, "seen_at": datetime.now(UTC)}
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(gateway_replicas).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["id"], set_={"url": row["url"], "seen_at": row["seen_at"]}
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)
        self._renewed(started)

    def _renewed(self, at: float) -> None:
        """A renewal begun at ``at`` succeeded: steady from then on if the
        one before it was too long ago (`_gap`)."""
        if self._renewed_at is None or at - self._renewed_at > self._gap:
            self._steady_since = at
        self._renewed_at = at

    @property
    def _gap(self) -> float:
        """How long without a renewal breaks this replica's steadiness: half
        of ``stale_seconds``. An outage shorter than that cannot make a live
        replica's row look stale before it renews again (``stale_seconds`` is
        at least two heartbeats); one longer makes this replica wait a whole
        ``stale_seconds``. A pause of the event loop shorter than it changes
        nothing."""
        return self.stale_seconds / 2

    def steady(self) -> bool:
        """Whether this replica may judge the others: its own row renewed
        without a gap for a whole ``stale_seconds``, the last time lately."""
        now = self._clock()
        return (
            self._renewed_at is not None
            and self._steady_since is not None
            and now - self._renewed_at <= self._gap
            and now - self._steady_since >= self.stale_seconds
        )

    async def gone(self, ids: set[str]) -> set[str]:
        """Those of ``ids`` that are gone (never this one): none unless this
        replica is `steady` -- the others had as much chance to renew."""
        if not self.steady():
            return set()
        return set(ids) - await self.live_ids()

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
