"""`AuditExporter` and `SqlExportStreams` on a real database (SQLite and the
local PostgreSQL), with a sink of the test's own standing in for the
receiver: each writer's records in order and once each when nothing fails;
a stream held by one replica at a time and taken when the replica directory
judges its holder gone; a stale holder's every write refused by the lease's
generation; a batch that was not taken sent again as the same batch; a batch
refused for good taken record by record, the refused record alone a dead
letter, then replayed; a drained stream of a gone writer retired, and set up
again if the writer was alive after all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit_export.exporter import AuditExporter, ExportLimits
from gateway.audit_export.sinks import DeliveryFailed
from gateway.audit_export.streams import SqlExportStreams, Stream
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_reads import AuditRecord
from gateway.delegation.audit_records import AuditEvent
from gateway.storage.audit_tables import audit_export_streams
from gateway.storage.replicas import ReplicaDirectory
from gateway.storage.tables import gateway_replicas


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
HEARTBEAT, STALE = 1.0, 3.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def replica(engine: AsyncEngine, name: str, *, steady: bool = False) -> ReplicaDirectory:
    """Replica ``name``'s directory, announced; ``steady``: renewed a
    heartbeat apart (on its own clock) for a whole stale window, so it may
    judge another's stale row gone."""
    clock = Clock()
    directory = ReplicaDirectory(
        "http://127.0.0.1:1",
        replica_id=name,
        heartbeat_seconds=HEARTBEAT,
        stale_seconds=STALE,
        clock=clock,
    )
    await directory.announce(engine)
    while steady and not directory.steady():
        clock.now += HEARTBEAT
        await directory.renew()
    return directory


async def paused(engine: AsyncEngine, name: str) -> None:
    """Replica ``name`` renewed its row last an hour ago: paused, cut off."""
    async with engine.begin() as conn:
        await conn.execute(
            update(gateway_replicas)
            .where(gateway_replicas.c.id == name)
            .values(seen_at=datetime.now(UTC) - timedelta(hours=1))
        )


async def cursor(engine: AsyncEngine, writer: str) -> tuple[int, str | None, int]:
    """The stream's last record delivered, its holder and its generation."""
    c = audit_export_streams.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(c.last_id, c.lease_owner, c.lease_generation).where(c.writer == writer)
            )
        ).one()
    return int(row[0]), row[1], int(row[2])


async def test_each_writers_records_in_order_once(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    r1 = await replica(engine, "r1")
    await streams.ensure("test", "w1", "r1")
    await streams.ensure("test", "w2", "r2")  # r2 has no row: stopped, gone
    mine, theirs = await write(engine, "w1", 7), await write(engine, "w2", 4)
    await AuditExporter(streams, sink, "w1", LIMITS, replicas=r1).run_pass()
    taken = sink.taken()
    assert sorted(taken) == sorted(mine + theirs) and len(taken) == len(set(taken))
    assert [i for i in taken if i in mine] == mine and [i for i in taken if i in theirs] == theirs
    assert all(len(ids) <= 3 for _, ids in sink.batches)


async def test_one_holder_at_a_time_and_taken_when_it_is_gone(engine: AsyncEngine) -> None:
    r1, r2 = await replica(engine, "r1"), await replica(engine, "r2")
    first, second = SqlExportStreams(engine), SqlExportStreams(engine)  # two processes
    await first.ensure("test", "w1", "r1")
    held = await first.claim("test", r1)
    assert [s.writer for s in held] == ["w1"]
    assert await second.claim("test", r2) == []  # r1 is alive: its stream stays its own
    await r1.withdraw()  # r1 stopped: gone at once
    assert [s.writer for s in await second.claim("test", r2)] == ["w1"]
    assert await cursor(engine, "w1") == (0, "r2", 2)
    # r1 back, with what it read before: it moves nothing.
    assert not await first.delivered(held[0], "r1", 5, 5)


async def test_a_stale_holders_every_write_is_refused_by_the_generation(
    engine: AsyncEngine,
) -> None:
    # Two holders: r1 holds the stream, is paused past the stale window, and
    # r2 (steady) takes the stream over; r2 is then gone too and r1, back,
    # takes it back -- at the same cursor. Each write r1 makes under the
    # claim it held before is refused, by the generation alone.
    sink = Sink()
    r1, r2 = await replica(engine, "r1"), await replica(engine, "r2", steady=True)
    first, second = SqlExportStreams(engine), SqlExportStreams(engine)
    await first.ensure("test", "w1", "r1")
    ids = await write(engine, "w1", 2)
    [stale] = await first.claim("test", r1)
    records = await first.batch(stale, 10)
    await paused(engine, "r1")
    [taken] = await second.claim("test", r2)
    assert taken.generation == stale.generation + 1 and taken.last_id == stale.last_id
    assert not await first.delivered(stale, "r1", ids[-1], len(ids))
    assert not await first.dead_letter(stale, "r1", records, "refused")
    await first.failed(stale, "r1", ids[-1], "down", 60)
    assert not await first.retire(stale, "r1")
    assert await cursor(engine, "w1") == (0, "r2", taken.generation)
    assert await first.dead_letter_count() == 0
    assert [row["failures"] for row in await first.status()] == [0]
    # r2 gone in turn; r1 takes the stream back: its old claim still writes nothing.
    await r2.withdraw()
    r1 = await replica(engine, "r1", steady=True)
    [again] = await first.claim("test", r1)
    assert again.generation == taken.generation + 1 and again.last_id == stale.last_id
    assert not await first.delivered(stale, "r1", ids[-1], len(ids))
    assert await cursor(engine, "w1") == (0, "r1", again.generation)
    # Under the claim it holds now, r1 delivers.
    await AuditExporter(first, sink, "w1", LIMITS, replicas=r1).run_pass()
    assert sink.taken() == ids and (await cursor(engine, "w1"))[0] == ids[-1]


async def test_an_older_gateways_renewed_lease_is_left_to_it(engine: AsyncEngine) -> None:
    # In a rolling upgrade an older gateway holds a stream by renewing a time
    # lease in its writer's name: taken only once that lease passes, and then
    # given one the older gateways never see pass.
    r1 = await replica(engine, "r1")
    streams = SqlExportStreams(engine)
    await streams.ensure("test", "old", "r1")
    c = audit_export_streams.c
    for until in (timedelta(seconds=60), timedelta(seconds=-1)):
        async with engine.begin() as conn:
            await conn.execute(
                update(audit_export_streams)
                .where(c.writer == "old")
                .values(lease_owner="old", lease_until=datetime.now(UTC) + until)
            )
        held = await SqlExportStreams(engine).claim("test", r1)
    assert [s.writer for s in held] == ["old"]
    async with engine.connect() as conn:
        lease = await conn.scalar(select(c.lease_until).where(c.writer == "old"))
    assert lease is not None and lease.year == 9999


async def test_a_batch_not_taken_goes_again_as_the_same_batch(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    r1 = await replica(engine, "r1")
    await streams.ensure("test", "w1", "r1")
    exporter = AuditExporter(streams, sink, "w1", LIMITS, replicas=r1)
    first = await write(engine, "w1", 2)  # a short batch
    sink.down = True
    await exporter.run_pass()
    [stream] = await streams.claim("test", r1)
    assert stream.failures == 1 and stream.batch_until == first[-1]
    more = await write(engine, "w1", 4)
    sink.down = False
    await exporter.run_pass()
    assert sink.batches[0] == (f"w1:{first[0]}-{first[-1]}", first)
    assert sink.taken() == first + more


async def test_a_refused_record_alone_is_a_dead_letter_then_replayed(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    r1 = await replica(engine, "r1")
    await streams.ensure("test", "w1", "r1")
    counted: dict[str, int] = {}

    def count(sink_name: str, outcome: str, records: int) -> None:
        counted[outcome] = counted.get(outcome, 0) + records

    exporter = AuditExporter(streams, sink, "w1", LIMITS, counted=count, replicas=r1)
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
    r1 = await replica(engine, "r1")
    await streams.ensure("test", "w1", "r1")
    await write(engine, "w1", 2)
    sink.down = True
    for _ in range(5):
        await AuditExporter(streams, sink, "w1", LIMITS, replicas=r1).run_pass()
    assert await streams.dead_letter_count() == 0
    capped = ExportLimits(batch_size=3, max_attempts=6, base_delay_seconds=0, max_delay_seconds=0)
    await AuditExporter(streams, sink, "w1", capped, replicas=r1).run_pass()
    assert await streams.dead_letter_count() == 2


async def test_a_drained_stream_of_a_gone_writer_is_retired(engine: AsyncEngine) -> None:
    streams, sink = SqlExportStreams(engine), Sink()
    here = await replica(engine, "here")
    await streams.ensure("test", "gone", "gone")  # its replica has no row: gone
    ids = await write(engine, "gone", 2)
    await AuditExporter(streams, sink, "here", LIMITS, replicas=here).run_pass()
    assert sink.taken() == ids
    assert [row["writer"] for row in await streams.status()] == ["here"]
    # "gone" was alive after all: its next pass sets its stream up again.
    later = await write(engine, "gone", 1)
    back = await replica(engine, "gone")
    await AuditExporter(SqlExportStreams(engine), sink, "gone", LIMITS, replicas=back).run_pass()
    assert sink.taken()[-len(ids + later) :] == ids + later  # again from its first: never lost
