"""The audit export's state in the database: per sink and writer, a cursor
(the last record delivered) under a lease, and the dead letters.

Why per writer: one process writes its audit records one batch at a time
(`AuditLog.flush`), so among one writer's records ids are commit order, and
"after the cursor" misses nothing that commits later -- which ids across
concurrent writers would not promise on PostgreSQL. Why a lease: a writer's
records are delivered in order by one process at a time; the writer's own
process holds its lease while it lives, and when it is gone (its lease not
renewed) any other process adopts the stream and finishes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit_reads import AuditRecord, audit_record
from gateway.storage.audit_tables import audit_dead_letters, audit_events, audit_export_streams

streams = audit_export_streams


@dataclass(frozen=True)
class Stream:
    sink: str
    writer: str
    last_id: int
    failures: int
    batch_until: int | None = None  # the batch in flight, while it is retried


def _now() -> datetime:
    return datetime.now(UTC)


class SqlExportStreams:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def ensure(self, sink: str, writer: str) -> None:
        """The stream of ``writer``'s records to ``sink``, from its first."""
        row = {
            "sink": sink,
            "writer": writer,
            "last_id": 0,
            "failures": 0,
            "delivered": 0,
            "updated_at": _now(),
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
        except IntegrityError:
            pass  # made meanwhile

    async def claim(self, sink: str, owner: str, lease_seconds: float) -> list[Stream]:
        """The streams ``owner`` delivers now: those it holds, and any whose
        lease is free or lapsed (its holder gone); not one waiting out a
        failure. Each is leased to ``owner`` for ``lease_seconds``."""
        now = _now()
        until = now + timedelta(seconds=lease_seconds)
        claimable = and_(
            streams.c.sink == sink,
            or_(
                streams.c.lease_owner == owner,
                streams.c.lease_until.is_(None),
                streams.c.lease_until < now,
            ),
        )
        async with self._engine.begin() as conn:
            # The lease is taken by its conditional update: of two processes
            # adopting one stream, the second updates nothing.
            rows = (
                await conn.execute(
                    update(streams)
                    .where(claimable)
                    .values(lease_owner=owner, lease_until=until)
                    .returning(
                        streams.c.writer,
                        streams.c.last_id,
                        streams.c.failures,
                        streams.c.next_attempt_at,
                        streams.c.batch_until,
                    )
                )
            ).all()
        ready = [
            Stream(sink, row[0], row[1], row[2], row[4])
            for row in rows
            if row[3] is None or _utc(row[3]) <= now
        ]
        # The longest-waiting first, then by writer: no stream starves behind
        # a busy one across passes (each pass has a time budget).
        return sorted(ready, key=lambda s: (-s.failures, s.writer))

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

    async def delivered(self, stream: Stream, owner: str, last_id: int, count: int) -> bool:
        """Move the cursor past a delivered batch (False: the lease was lost)."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(streams)
                .where(*_held(stream, owner))
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
        self, stream: Stream, owner: str, until: int, error: str, retry_in: float
    ) -> None:
        """The batch ending at ``until`` was not taken: it goes again, whole."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(streams)
                .where(*_held(stream, owner))
                .values(
                    batch_until=until,
                    failures=streams.c.failures + 1,
                    next_attempt_at=_now() + timedelta(seconds=retry_in),
                    last_error=error[:2000],
                    updated_at=_now(),
                )
            )

    async def dead_letter(
        self, stream: Stream, owner: str, records: Sequence[AuditRecord], error: str
    ) -> bool:
        """Keep ``records`` as dead letters and move the cursor past them, in
        one transaction: each record is either still to deliver or kept."""
        now = _now()
        async with self._engine.begin() as conn:
            moved = await conn.execute(
                update(streams)
                .where(*_held(stream, owner))
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

    async def retire(self, stream: Stream, owner: str) -> bool:
        """Forget a drained stream of a writer that is gone (its lease lapsed,
        so another process holds it): nothing left of it to deliver. Should
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
            done = await conn.execute(delete(streams).where(*_held(stream, owner)))
        return bool(done.rowcount)

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


def _held(stream: Stream, owner: str) -> tuple[Any, ...]:
    """Still ``owner``'s, and where ``owner`` last saw it: a process that lost
    the stream and took it back never moves the cursor from a stale read."""
    return (
        streams.c.sink == stream.sink,
        streams.c.writer == stream.writer,
        streams.c.lease_owner == owner,
        streams.c.last_id == stream.last_id,
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
