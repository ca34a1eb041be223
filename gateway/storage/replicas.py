"""The replicas running now: each one's id, where its siblings reach it, and
whether it is alive -- one row per replica in `gateway_replicas`, renewed
while it runs.

Three things hang on a replica's identity. A 2025-11-25 MCP session lives
in the replica that opened it, and its id names that replica
(`gateway.mcp.replicas`). A flow run is a DBOS workflow owned by the replica
that runs it (its DBOS executor id is the replica id), and a gateway-run task
(a vendor agent's call, an approved call) is a row naming the replica that
runs it: the durable work of a replica that is gone is taken over by a live
one by one rule, `gone` (`gateway.flows.takeover`,
`gateway.delegation.task_runner`).

The id is `replica_id` when it is set -- a StatefulSet pod's name, say: the
same replica restarted takes its own unfinished runs back at once -- else a
random one per process. A row not renewed for `stale_seconds` is a replica
that is gone (a SIGKILL leaves its row behind; a clean stop deletes it).

A database outage is not a death. While the database is away no replica
renews its row, so once it is back every other row looks stale, and the
first replica to look would take over runs that are alive in their own
replicas -- two replicas running one run. So a stale row is judged gone
(`gone`) only by a replica that is `steady`: one that has itself renewed its
own row, with no renewal failed, hung or late, for a whole `stale_seconds`
-- the window in which the others had the same chance to renew theirs. Not
for that long after it started, after an outage, after its host slept. A
row that is absent is a replica that stopped cleanly (it deletes its row):
gone at once, whoever judges.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Insert, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import gateway_replicas

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 45.0  # more than three missed heartbeats: that replica is gone
_CACHE_SECONDS = 5.0


def boot_clock() -> float:
    """Seconds on a clock that keeps counting while the host is suspended
    (Linux's CLOCK_BOOTTIME; elsewhere the monotonic clock): a replica whose
    host slept missed its heartbeats as surely as one whose database was away."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


def random_replica_id() -> str:
    return secrets.token_hex(6)


def renewal(dialect: str, rows: Sequence[Mapping[str, Any]]) -> Insert:
    """One statement writing replicas' rows (``id``, ``url``, ``seen_at``):
    each inserted, or renewed where it is there already. A replica renews
    its own with it (`ReplicaDirectory.renew`); `bench.idle` the rows of
    replicas it stands in for."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(gateway_replicas).values([dict(row) for row in rows])
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={"url": statement.excluded.url, "seen_at": statement.excluded.seen_at},
    )


class ReplicaDirectory:
    """This replica's id and address, and the others', from the database."""

    def __init__(
        self,
        url: str,
        *,
        replica_id: str | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        stale_seconds: float = STALE_SECONDS,
        clock: Callable[[], float] = boot_clock,
    ) -> None:
        self.id = replica_id or random_replica_id()
        self.url = url
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.engine: AsyncEngine | None = None
        self._known: dict[str, tuple[str | None, float]] = {}
        self._clock = clock
        # This replica's own renewals: when the last one that succeeded ended,
        # and since when none has failed, hung or come late (None: one just
        # failed, or none has succeeded yet).
        self._renewed_at: float | None = None
        self._steady_since: float | None = None
        # Another live process renews this id too (two replicas given one
        # `replica_id`): seen when the row says another address between two
        # renewals of this one's.
        self.twin: str | None = None
        # The other replicas' rows at the last renewal (any, and those renewed
        # within ``stale_seconds``), and who is told when either moves (jobs
        # that look for the others' work or changes: `storage.periodic.Pace`).
        self.others: frozenset[str] = frozenset()
        self.live_others: frozenset[str] = frozenset()
        self.on_others: list[Callable[[], None]] = []
        self.met = False  # whether the others' rows were read yet

    async def announce(self, engine: AsyncEngine) -> None:
        self.engine = engine
        await self._renew()

    async def _renew(self) -> None:
        assert self.engine is not None
        started = self._clock()
        row = {"id": self.id, "url": self.url, "seen_at": datetime.now(UTC)}
        statement = renewal(self.engine.dialect.name, [row])
        # The rows are read with the renewal from the second on (as the twin
        # check always was): at the first, the workers of `serve --workers`
        # start together, and on SQLite reads that then write at once refuse
        # each other ("database is locked"). Who runs is known from then on.
        rows: Sequence[Any] | None = None
        try:
            async with self.engine.begin() as conn:
                if self._renewed_at is not None:
                    rows = (await conn.execute(select(gateway_replicas))).all()
                    self._look_for_twin(next((r.url for r in rows if r.id == self.id), None))
                await conn.execute(statement)
        except BaseException:
            self._steady_since = None  # the others could not renew either
            raise
        self._renewed(started, self._clock())
        if rows is not None:
            self._met(rows)

    def _met(self, rows: Sequence[Any]) -> None:
        """The other replicas' rows as this renewal read them; those told
        (`on_others`) when the set of them, or of the live ones, moved."""
        fresh_since = self._fresh_since()
        others = frozenset(str(r.id) for r in rows if r.id != self.id)
        live = frozenset(
            str(r.id) for r in rows if r.id != self.id and _utc(r.seen_at) >= fresh_since
        )
        moved = (others, live) != (self.others, self.live_others)
        self.others, self.live_others, self.met = others, live, True
        if moved:
            for told in self.on_others:
                told()

    def alone(self) -> bool:
        """Whether no other replica is running: none renewed its row lately
        as this one last read them, and this one's own renewals are on time
        (after a failed or late one, or before the first, who else runs is
        not known). What only another replica changes (a set, a policy, an
        MCP server stored there) need not be looked for often meanwhile; a
        replica that starts is seen at this one's next renewal, which tells
        `on_others`."""
        return self.met and not self.live_others and self._renewals_on_time()

    def _renewals_on_time(self) -> bool:
        return (
            self._renewed_at is not None
            and self._steady_since is not None
            and self._clock() - self._renewed_at <= self.heartbeat_seconds + self._slack
        )

    def _look_for_twin(self, written: str | None) -> None:
        if written is not None and written != self.url:
            if self.twin is None:
                logger.error(
                    "replica id %s is also used by a live replica at %s: two replicas must "
                    "never share a replica_id; this one takes back none of its own runs "
                    "until it is alone",
                    self.id,
                    written,
                )
            self.twin = str(written)
        elif written is not None:
            self.twin = None

    @property
    def _slack(self) -> float:
        """How much later than its heartbeat a renewal may come, or how long
        one may take, and still count as steady: half of ``stale_seconds``
        (at least two heartbeats long, so at least a heartbeat). A loaded
        machine's late beat is no outage; a renewal held up longer may be."""
        return self.stale_seconds / 2

    def _renewed(self, started: float, ended: float) -> None:
        """A renewal from ``started`` to ``ended`` succeeded: steady from
        ``ended`` on if it hung, came late, or follows one that failed."""
        late = (
            self._renewed_at is None
            or started - self._renewed_at > self.heartbeat_seconds + self._slack
        )
        hung = ended - started > self._slack
        if late or hung or self._steady_since is None:
            self._steady_since = ended
        self._renewed_at = ended

    def steady(self) -> bool:
        """Whether this replica may judge a stale row: its own row renewed,
        none failed, hung or late, for a whole ``stale_seconds``, and lately."""
        since = self._steady_since
        return (
            self._renewals_on_time()
            and since is not None
            and self._clock() - since >= self.stale_seconds
        )

    async def gone(self, ids: set[str]) -> set[str]:
        """Those of ``ids`` that are gone (never this one): those with no row
        (stopped cleanly), and -- only while this replica is `steady` --
        those whose row is stale. None before this replica is announced: it
        cannot tell an absent row from a database it has not reached."""
        if self.engine is None:
            return set()
        seen = await self._seen()
        gone = {i for i in ids if i not in seen}
        if self.steady():
            since = self._fresh_since()
            gone |= {i for i in ids if i in seen and seen[i] < since}
        return gone - {self.id}

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

    async def _seen(self) -> dict[str, datetime]:
        """Each replica's row: when it was last renewed."""
        if self.engine is None:
            return {}
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(gateway_replicas.c.id, gateway_replicas.c.seen_at))
            ).all()
        return {str(row.id): _utc(row.seen_at) for row in rows}

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
