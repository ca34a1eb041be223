"""`AuditExporter` and `SqlExportStreams` on a real database (SQLite and the
local PostgreSQL), with a sink of the test's own standing in for the
receiver: each writer's records in order and once each when nothing fails;
a stream held by one process at a time and adopted when its holder is gone;
a batch that was not taken sent again as the same batch; a batch refused for
good taken record by record, the refused record alone a dead letter, then
replayed; a stale holder never moves a cursor; a drained stream of a gone
writer retired, and set up again if the writer was alive after all."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit_export.exporter import AuditExporter, ExportLimits
from gateway.audit_export.sinks import DeliveryFailed
from gateway.audit_export.streams import SqlExportStreams, Stream
from gateway.delegation.audit import AuditEvent, AuditLog
from gateway.delegation.audit_reads import AuditRecord


class Sink:
    name = "test"

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.down = False
        self.refuses: set[int] = set()  # record ids refused for good

    async def deliver(self, batch_id: str, records: Sequence[AuditRecord]) -> None:
        ids = [r.id for r in records]
        if self.down:
            raise DeliveryFailed("connection refused")
        if self.refuses & set(ids):
            raise DeliveryFailed("HTTP 400", permanent=True)
        self.batches.append((batch_id, ids))

    def taken(self) -> list[int]:
        return [i for _, ids in self.batches for i in ids]

    async def aclose(self) -> None:
        pass


async def write(engine: AsyncEngine, writer: str, count: int) -> list[int]:
    """``count`` new records of ``writer``: their ids."""
    streams = SqlExportStreams(engine)
    before = {r.id for r in await streams.batch(Stream("test", writer, 0, 0), 10_000)}
    log = AuditLog(engine, writer=writer)
    for n in range(count):
        await log.record(
            AuditEvent(
                event="test",
                trace_id=f"{n:032x}",
                subject="alice",
                subject_issuer="idp",
                decision="allow",
                outcome="ok",
            )
        )
    await log.flush()
    rows = await streams.batch(Stream("test", writer, 0, 0), 10_000)
    return [r.id for r in rows if r.id not in before]


LIMITS = ExportLimits(batch_size=3, base_delay_seconds=0.0, max_delay_seconds=0.0)


async def test_each_writers_records_in_order_once(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    for writer in ("w1", "w2"):
        await streams.ensure("test", writer)
    mine, theirs = await write(engine, "w1", 7), await write(engine, "w2", 4)
    await AuditExporter(streams, sink, "w1", LIMITS).run_pass()
    taken = sink.taken()
    assert sorted(taken) == sorted(mine + theirs) and len(taken) == len(set(taken))
    assert [i for i in taken if i in mine] == mine and [i for i in taken if i in theirs] == theirs
    assert all(len(ids) <= 3 for _, ids in sink.batches)


async def test_one_holder_at_a_time_and_adoption_when_gone(engine: AsyncEngine) -> None:
    streams = SqlExportStreams(engine)
    await streams.ensure("test", "w1")
    held = await streams.claim("test", "w1", lease_seconds=60)
    assert [s.writer for s in held] == ["w1"]
    assert await streams.claim("test", "w2", lease_seconds=60) == []
    # w1's lease lapses (it is gone): w2 adopts the stream.
    await streams.claim("test", "w1", lease_seconds=-1)
    assert [s.writer for s in await streams.claim("test", "w2", lease_seconds=60)] == ["w1"]
    # w1 back, with what it read before: it moves nothing.
    assert not await streams.delivered(held[0], "w1", 5, 5)


async def test_a_batch_not_taken_goes_again_as_the_same_batch(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    await streams.ensure("test", "w1")
    exporter = AuditExporter(streams, sink, "w1", LIMITS)
    first = await write(engine, "w1", 2)  # a short batch
    sink.down = True
    await exporter.run_pass()
    [stream] = await streams.claim("test", "w1", 60)
    assert stream.failures == 1 and stream.batch_until == first[-1]
    more = await write(engine, "w1", 4)
    sink.down = False
    await exporter.run_pass()
    assert sink.batches[0] == (f"w1:{first[0]}-{first[-1]}", first)
    assert sink.taken() == first + more


async def test_a_refused_record_alone_is_a_dead_letter_then_replayed(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    await streams.ensure("test", "w1")
    counted: dict[str, int] = {}

    def count(sink_name: str, outcome: str, records: int) -> None:
        counted[outcome] = counted.get(outcome, 0) + records

    exporter = AuditExporter(streams, sink, "w1", LIMITS, counted=count)
    ids = await write(engine, "w1", 6)
    sink.refuses = {ids[1]}
    await exporter.run_pass()
    await exporter.run_pass()
    assert sink.taken() == [i for i in ids if i != ids[1]]
    assert counted == {"delivered": 5, "dead_letter": 1}
    [letter] = await streams.dead_letters("test", 10)
    assert letter["audit_id"] == ids[1] and "HTTP 400" in letter["error"]
    sink.refuses = set()
    outcome = await exporter.replay(100)
    assert (outcome.replayed, outcome.failed) == (1, None)
    assert sink.taken()[-1] == ids[1] and await streams.dead_letter_count() == 0


async def test_transient_failures_never_make_dead_letters_unless_capped(
    engine: AsyncEngine,
) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    await streams.ensure("test", "w1")
    await write(engine, "w1", 2)
    sink.down = True
    for _ in range(5):
        await AuditExporter(streams, sink, "w1", LIMITS).run_pass()
    assert await streams.dead_letter_count() == 0
    capped = ExportLimits(batch_size=3, max_attempts=6, base_delay_seconds=0, max_delay_seconds=0)
    await AuditExporter(streams, sink, "w1", capped).run_pass()
    assert await streams.dead_letter_count() == 2


async def test_a_drained_stream_of_a_gone_writer_is_retired(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    await streams.ensure("test", "gone")
    ids = await write(engine, "gone", 2)
    await AuditExporter(streams, sink, "here", LIMITS).run_pass()
    assert sink.taken() == ids
    assert [row["writer"] for row in await streams.status()] == ["here"]
    # "gone" was alive after all: its next pass sets its stream up again.
    later = await write(engine, "gone", 1)
    await AuditExporter(streams, sink, "gone", LIMITS).run_pass()
    assert sink.taken()[-len(ids + later) :] == ids + later  # again from its first: never lost
