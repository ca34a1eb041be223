"""The audit export's state in the database: per sink and writer, a cursor
(the last record delivered) held by one replica at a time, and the dead
letters.

Why per writer: one process writes its audit records one batch at a time
(`AuditLog.flush`), so among one writer's records ids are commit order, and
"after the cursor" misses nothing that commits later -- which ids across
concurrent writers would not promise on PostgreSQL. Why held: a writer's
records are delivered in order by one replica at a time. A stream is held by
the lease every piece of durable work but a flow run holds
(`gateway.storage.leases`): its row names the replica holding it and the
claim it holds it under (`lease_generation`), the writer's own replica holds
it from the start, and once the replica directory judges a holder gone,
another replica takes the stream (a compare-and-set on holder and
generation) and finishes it. Every write a holder makes is made only under
the claim it holds: a replica paused past the directory's stale window moves
no cursor and keeps no dead letter once its stream was taken.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit_reads import AuditRecord, audit_record
from gateway.storage.audit_tables import audit_dead_letters, audit_events, audit_export_streams
from gateway.storage.leases import Lease, free_at
from gateway.storage.replicas import ReplicaDirectory

logger = logging.getLogger(__name__)

streams = audit_export_streams
STREAM_LEASE = Lease(streams.c.lease_owner, streams.c.lease_generation, streams.c.lease_until)


@dataclass(frozen=True)
class Stream:
    sink: str
    writer: str
    last_id: int
    failures: int
    batch_until: int | None = None  # the batch in flight, while it is retried
    generation: int = 0  # the claim it is held under (`STREAM_LEASE`)


def _now() -> datetime:
    return datetime.now(UTC)


class SqlExportStreams:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # The streams this process holds: the generation of each one's claim.
        self._held: dict[tuple[str, str], int] = {}

    async def ensure(self, sink: str, writer: str, holder: str) -> None:
        """The stream of ``writer``'s records to ``sink``, from its first,
        held by the replica ``holder`` (the writer's own) if it is new."""
        row = {
            "sink": sink,
            "writer": writer,
            "last_id": 0,
            "failures": 0,
            "delivered": 0,
            "updated_at": _now(),
            **STREAM_LEASE.kept(holder, 1),
        }
        try:
            async with self._engine.begin() as conn:
                found = await conn.scalar(
                    select(func.count())
                    .select_from(streams)
                    .where(streams.c.sink == sink, streams.c.writer == writer)
                )
                if not found:
                    await conn.execute(insert(streams), [row])
                    self._held[(sink, writer)] = 1
        except IntegrityError:
            pass  # made meanwhile

    async def claim(self, sink: str, replicas: ReplicaDirectory) -> list[Stream]:
        """The streams this replica delivers now: those it holds, and those it
        takes -- held by nobody, or by a replica the directory judges gone
        (or this one's own id in a previous life); not one waiting out a
        failure. Holding writes nothing: only a claim does."""
        now, me = _now(), replicas.id
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(streams).where(streams.c.sink == sink))).all()
        others = {r.lease_owner for r in rows if r.lease_owner not in (None, me)}
        gone = await replicas.gone(others) if others else set()
        ready: list[Stream] = []
        for row in rows:
            generation: int | None = row.lease_generation
            if row.lease_owner != me or self._held.get((sink, row.writer)) != generation:
                takeable = _takeable(row, me, gone, replicas.twin is None, now)
                generation = await self._take(sink, row, me) if takeable else None
            if generation is None:
                continue
            if row.next_attempt_at is None or _utc(row.next_attempt_at) <= now:
                ready.append(
                    Stream(sink, row.writer, row.last_id, row.failures, row.batch_until, generation)
                )
        # The longest-waiting first, then by writer: no stream starves behind
        # a busy one across passes (each pass has a time budget).
        return sorted(ready, key=lambda s: (-s.failures, s.writer))

    async def _take(self, sink: str, row: Any, me: str) -> int | None:
        """Claim ``row`` as read (its holder and generation): the generation
        it is held under now, or None if another replica took it first."""
        async with self._engine.begin() as conn:
            taken = await conn.execute(
                update(streams)
                .where(
                    streams.c.sink == sink,
                    streams.c.writer == row.writer,
                    *STREAM_LEASE.claim(row.lease_owner, row.lease_generation),
                )
                .values(**STREAM_LEASE.taken(me, row.lease_generation))
            )
        if not taken.rowcount:
            return None
        if row.lease_owner not in (None, me):
            logger.warning(
                "replica %s takes over the audit export of writer %s to %s from %s, gone",
                me,
                row.writer,
                sink,
                row.lease_owner,
            )
        generation = int(row.lease_generation) + 1
        self._held[(sink, row.writer)] = generation
        return generation

    async def batch(self, stream: Stream, limit: int) -> list[AuditRecord]:
        """The stream's next batch: the one in flight again, if any."""
        query = (
            select(audit_events)
            .where(audit_events.c.writer == stream.writer, audit_events.c.id > stream.last_id)
            .order_by(audit_events.c.id)
            .limit(limit)
        )
        if stream.batch_until is not None:
            query = query.where(audit_events.c.id <= stream.batch_until)
        async with self._engine.connect() as conn:
            return [audit_record(row) for row in (await conn.execute(query)).mappings()]

    async def delivered(self, stream: Stream, holder: str, last_id: int, count: int) -> bool:
        """Move the cursor past a delivered batch (False: the stream was taken)."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(streams)
                .where(*_held(stream, holder))
                .values(
                    last_id=last_id,
                    batch_until=None,
                    failures=0,
                    next_attempt_at=None,
                    last_error=None,
                    delivered=streams.c.delivered + count,
                    updated_at=_now(),
                )
            )
        return bool(done.rowcount)

    async def failed(
        self, stream: Stream, holder: str, until: int, error: str, retry_in: float
    ) -> None:
        """The batch ending at ``until`` was not taken: it goes again, whole."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(streams)
                .where(*_held(stream, holder))
                .values(
                    batch_until=until,
                    failures=streams.c.failures + 1,
                    next_attempt_at=_now() + timedelta(seconds=retry_in),
                    last_error=error[:2000],
                    updated_at=_now(),
                )
            )

    async def dead_letter(
        self, stream: Stream, holder: str, records: Sequence[AuditRecord], error: str
    ) -> bool:
        """Keep ``records`` as dead letters and move the cursor past them, in
        one transaction: each record is either still to deliver or kept."""
        now = _now()
        async with self._engine.begin() as conn:
            moved = await conn.execute(
                update(streams)
                .where(*_held(stream, holder))
                .values(
                    last_id=records[-1].id,
                    batch_until=None,
                    failures=0,
                    next_attempt_at=None,
                    last_error=error[:2000],
                    updated_at=now,
                )
            )
            if not moved.rowcount:
                return False
            await conn.execute(
                insert(audit_dead_letters),
                [
                    {
                        "sink": stream.sink,
                        "audit_id": r.id,
                        "writer": stream.writer,
                        "at": now,
                        "error": error[:2000],
                    }
                    for r in records
                ],
            )
        return True

    async def retire(self, stream: Stream, holder: str) -> bool:
        """Forget a drained stream of a writer that is gone (its replica
        judged gone, so another one holds it): nothing left of it. Should
        the writer be alive after all, its next pass sets its stream up
        again from the first record -- sent twice, never lost."""
        async with self._engine.begin() as conn:
            left = await conn.scalar(
                select(func.count())
                .select_from(audit_events)
                .where(audit_events.c.writer == stream.writer, audit_events.c.id > stream.last_id)
            )
            if left:
                return False
            done = await conn.execute(delete(streams).where(*_held(stream, holder)))
        if not done.rowcount:
            return False
        self._held.pop((stream.sink, stream.writer), None)
        return True

    async def status(self) -> list[dict[str, Any]]:
        """Each stream, with how many of its records are still to deliver."""
        pending = (
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.writer == streams.c.writer, audit_events.c.id > streams.c.last_id)
            .scalar_subquery()
        )
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(streams, pending.label("pending")).order_by(
                        streams.c.sink, streams.c.writer
                    )
                )
            ).mappings()
            return [dict(row) for row in rows]

    async def dead_letter_count(self) -> int:
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(func.count()).select_from(audit_dead_letters))
            return int(found or 0)

    async def dead_letters(self, sink: str | None, limit: int) -> list[dict[str, Any]]:
        query = select(audit_dead_letters).order_by(audit_dead_letters.c.id).limit(limit)
        if sink is not None:
            query = query.where(audit_dead_letters.c.sink == sink)
        async with self._engine.connect() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    async def dead_letter_records(
        self, sink: str, limit: int
    ) -> list[tuple[int, AuditRecord | None]]:
        """The oldest dead letters of ``sink`` with their records (None: the
        record itself is gone, by retention)."""
        query = (
            select(audit_dead_letters.c.id.label("letter_id"), audit_events)
            .select_from(
                audit_dead_letters.outerjoin(
                    audit_events, audit_events.c.id == audit_dead_letters.c.audit_id
                )
            )
            .where(audit_dead_letters.c.sink == sink)
            .order_by(audit_dead_letters.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out: list[tuple[int, AuditRecord | None]] = []
        for row in rows:
            mapping = row._mapping
            found = mapping["trace_id"] is not None
            out.append((mapping["letter_id"], audit_record(mapping) if found else None))
        return out

    async def forget_dead_letters(self, ids: Sequence[int]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(audit_dead_letters).where(audit_dead_letters.c.id.in_(ids)))


def _held(stream: Stream, holder: str) -> tuple[Any, ...]:
    """Still ``holder``'s under the claim it read the stream in (the lease's
    generation: a replica a claim passed by writes nothing), and where it
    last saw the cursor (one that moves it does so from what it read)."""
    return (
        streams.c.sink == stream.sink,
        streams.c.writer == stream.writer,
        *STREAM_LEASE.held(holder, stream.generation),
        streams.c.last_id == stream.last_id,
    )


def _takeable(row: Any, me: str, gone: set[str], alone: bool, now: datetime) -> bool:
    """Whether a stream this process does not hold is this replica's to
    take: held by nobody, by a replica gone, or by this replica's id in a
    previous life (not while a twin uses the id); never while an older
    gateway's time lease holds it."""
    holder = row.lease_owner
    mine = holder == me and alone
    return free_at(row.lease_until, now) and (holder is None or holder in gone or mine)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
