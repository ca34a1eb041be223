"""gateway.delegation.audit: a durable record is written before `record`
returns -- a group commit through the one writer -- on SQLite and PostgreSQL.

The log is told to gather for ten seconds, so anything in the table when
`record` returns was written by the call itself, not by the background writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit import AuditLog
from gateway.storage.audit_tables import audit_events
from gateway.storage.db import create_engine, upgrade
from gateway.storage.sqlite_gate import gate_for
from tests.gateway.delegation.test_audit import all_records, counted_writes, database, event
from tests.support.waiting import wait_for_async, wait_for_awaited


async def traces_in_table(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.scalars(select(audit_events.c.trace_id))).all())


async def test_a_durable_record_is_written_before_record_returns(engine: AsyncEngine) -> None:
    log = AuditLog(engine, flush_seconds=10)
    await log.record(event(1))  # gathered for the writer
    await log.record(event(2), durable=True)
    # Written in order: the one before it too.
    assert await traces_in_table(engine) == {f"{1:032x}", f"{2:032x}"}
    assert [int(r.trace_id, 16) for r in await all_records(log)] == [2, 1]


async def test_durable_records_made_together_share_a_commit(engine: AsyncEngine) -> None:
    log = AuditLog(engine, flush_seconds=10)
    batches = counted_writes(log)

    async def recorded(n: int) -> bool:
        await log.record(event(n), durable=True)
        return f"{n:032x}" in await traces_in_table(engine)

    written = await asyncio.gather(*(recorded(n) for n in range(50)))
    assert all(written)  # each in the table when its own call returned
    assert sum(batches) == 50
    # The first waiter writes what the others made meanwhile: not one
    # transaction a record, even where the insert does not wait on I/O
    # (SQLite's statement runs on the loop when its connection is free).
    assert len(batches) <= 3, batches
    # One writer: ids in the order the records were made (the export reads by them).
    assert [int(r.trace_id, 16) for r in await all_records(log)] == list(reversed(range(50)))


async def test_a_durable_record_does_not_wait_on_a_database_that_is_down(
    unmigrated_database_url: str | None, tmp_path: Path
) -> None:
    # No audit table yet: every INSERT fails until it exists.
    engine = create_engine(database(unmigrated_database_url, tmp_path))
    try:
        log = AuditLog(engine, flush_seconds=10)
        await log.record(event(1), durable=True)  # never fails the call that records
        assert log.failing_since is not None
        await log.record(event(2), durable=True)  # nor waits on the outage again
        await upgrade(engine)
        await log.flush()  # kept, and written once the database answers
        assert [int(r.trace_id, 16) for r in await all_records(log)] == [2, 1]
        assert log.failing_since is None
    finally:
        await engine.dispose()


async def test_a_durable_record_whose_caller_goes_is_written_by_the_writer(
    engine: AsyncEngine,
) -> None:
    log = AuditLog(engine, flush_seconds=0.05)
    writer = asyncio.create_task(log.run_forever())
    try:
        call = asyncio.create_task(log.record(event(1), durable=True))
        await asyncio.sleep(0)  # the call runs up to its turn of the loop before the commit
        assert not call.done()
        call.cancel()  # its caller went away (a client's disconnect)
        with pytest.raises(asyncio.CancelledError):
            await call
        assert log._written == 0  # not by the cancelled call: still buffered

        async def written() -> bool:
            return f"{1:032x}" in await traces_in_table(engine)

        await wait_for_awaited(written, 10, what="the record written by the background writer")
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def test_records_waiting_behind_a_failed_write_stop_waiting(
    unmigrated_database_url: str | None, tmp_path: Path
) -> None:
    # No audit table: the first write fails; those queued behind it do not
    # try again themselves (the background writer does, with backoff).
    engine = create_engine(database(unmigrated_database_url, tmp_path))
    try:
        log = AuditLog(engine, flush_seconds=10)
        tried = counted_writes(log)
        await asyncio.gather(*(log.record(event(n), durable=True) for n in range(5)))
        assert log.failing_since is not None
        assert tried == [5]  # one attempt, by the first; the others returned
        await upgrade(engine)
        await log.flush()
        assert [int(r.trace_id, 16) for r in await all_records(log)] == [4, 3, 2, 1, 0]
    finally:
        await engine.dispose()


async def test_a_write_whose_caller_goes_counts_by_its_own_outcome(tmp_path: Path) -> None:
    # Another writer holds the file: the log's write goes to the statement
    # runner's thread and waits there; its caller is cancelled meanwhile. The
    # thread cannot be stopped and writes once the file is free: the record is
    # then counted written, not kept to be written a second time.
    path = tmp_path / "audit.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    gate = gate_for(str(path))
    try:
        await upgrade(engine)
        log = AuditLog(engine, flush_seconds=10)
        assert gate.acquire(blocking=False)
        try:
            call = asyncio.create_task(log.record(event(1), durable=True))
            # Made, and taken from the buffer for its write, which waits.
            await wait_for_async(lambda: log._kept == 1 and not log._buffer, 10)
            assert not call.done()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            # The next record waits for that write, and comes after it.
            later = asyncio.create_task(log.record(event(2), durable=True))
            await wait_for_async(lambda: log._kept == 2, 10)
            for _ in range(5):  # its flush: the lock, then the unfinished write
                await asyncio.sleep(0)
            assert log._unsettled is not None and len(log._buffer) == 1  # not taken yet
        finally:
            gate.release()
        await later
        assert log._written == 2
        await log.flush()  # nothing kept to write again
        async with engine.connect() as conn:
            traces = (await conn.scalars(select(audit_events.c.trace_id))).all()
        assert sorted(traces) == [f"{1:032x}", f"{2:032x}"]  # each once
        assert [int(r.trace_id, 16) for r in await all_records(log)] == [2, 1]
        await log.close()
    finally:
        await engine.dispose()
