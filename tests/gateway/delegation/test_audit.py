"""gateway.delegation.audit: the batched decision log, on SQLite and on PostgreSQL.

Reads go through `AuditLog.query`, which flushes first; where a test must see
what the *background* writer did, it reads the table directly instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event as event_api
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import core_check
from adapters.core_check import OutsideTheCore, inside_the_core
from gateway.delegation import audit
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_reads import AuditQuery, AuditRecord, InvalidAuditCursor
from gateway.delegation.audit_records import AuditEvent
from gateway.storage.audit_tables import audit_events
from gateway.storage.db import create_engine, upgrade
from tests.support import clock as fake_clock
from tests.support.waiting import wait_for_async, wait_for_awaited

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def database(database_url: str | None, tmp_path: Path) -> str:
    return database_url or f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"


def counted_writes(log: AuditLog) -> list[int]:
    """The size of each batch ``log`` writes from now on, seen at its one
    door to the database (`AuditLog._write`), whichever path it then takes:
    one transaction each."""
    batches: list[int] = []
    write = log._write

    async def counted(batch: list[dict[str, Any]], **how: Any) -> None:
        batches.append(len(batch))
        await write(batch, **how)

    log._write = counted  # type: ignore[method-assign]
    return batches


@pytest.fixture
def log(engine: AsyncEngine) -> AuditLog:
    return AuditLog(engine, flush_seconds=0.01)


def event(n: int = 0, **changes: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "event": "delegate",
        "trace_id": f"{n:032x}",
        "subject": "alice",
        "subject_issuer": "https://idp.example",
        "decision": "allow",
        "outcome": "ok",
        "target": "inventory",
        "at": T0 + timedelta(seconds=n),
    }
    values.update(changes)
    return AuditEvent(**values)


async def rows_in_table(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_events)) or 0)


async def all_records(log: AuditLog) -> list[AuditRecord]:
    return [r async for r in log.export(AuditQuery())]


# --------------------------------------------------------------------------- the core check


async def test_a_calls_record_outside_the_core_is_refused(log: AuditLog) -> None:
    # A record carrying a minted token's id is a call's: only `delegate()`
    # writes it (`adapters.core_check`; the suite runs strict).
    with pytest.raises(OutsideTheCore, match="the audit record of a call"):
        await log.record(event(token_id="0123456789abcdef0123456789abcdef"))
    core_check.forget_missed()  # what this test checks, not a path around the core
    assert await all_records(log) == []
    await log.record(event(1))  # no token: a refusal, a change -- not a call's
    assert [r.token_id for r in await all_records(log)] == [None]


# --------------------------------------------------------------------------- round trip


async def test_record_and_query_round_trip(log: AuditLog) -> None:
    at = datetime(2025, 6, 1, 12, 34, 56, 789012, tzinfo=UTC)
    with inside_the_core():  # a record with a token's id: the core's to write
        await log.record(
            AuditEvent(
                event="token_exchange",
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                subject="alice",
                subject_issuer="https://idp.example",
                decision="deny",
                outcome="denied",
                client_id="support-app",
                actors=("support-app", "support-agent"),
                target="inventory",
                action="check_stock",
                scopes_requested={"inventory:write", "inventory:read"},
                scopes_granted=["inventory:read"],
                reasons=["scope inventory:write is not granted", "depth 2 > 1"],
                detail="x" * 3000,
                latency_ms=1.23456,
                token_id="0123456789abcdef0123456789abcdef",
                at=at,
            )
        )
    page = await log.query(AuditQuery())

    assert len(page.items) == 1
    record = page.items[0]
    assert record.id >= 1
    assert record.at == at
    assert record.at.tzinfo is not None
    assert record.at.utcoffset() == timedelta(0)
    assert record.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record.event == "token_exchange"
    assert (record.subject, record.subject_issuer) == ("alice", "https://idp.example")
    assert record.client_id == "support-app"
    assert record.actors == ["support-app", "support-agent"]
    assert (record.target, record.action) == ("inventory", "check_stock")
    assert record.scopes_requested == ["inventory:read", "inventory:write"]  # sorted
    assert record.scopes_granted == ["inventory:read"]
    assert record.decision == "deny"
    assert record.reasons == ["scope inventory:write is not granted", "depth 2 > 1"]
    assert record.outcome == "denied"
    assert record.detail == "x" * 2000  # bounded
    assert record.latency_ms == 1.235
    assert record.token_id == "0123456789abcdef0123456789abcdef"
    assert page.next_cursor is None


async def test_optional_fields_round_trip_as_none(log: AuditLog) -> None:
    await log.record(
        AuditEvent(
            event="delegate",
            trace_id="a" * 32,
            subject="bob",
            subject_issuer="https://idp.example",
            decision="allow",
            outcome="ok",
        )
    )
    record = (await log.query(AuditQuery())).items[0]
    assert record.client_id is record.target is record.action is record.detail is None
    assert record.token_id is None
    # None = "no particular scopes asked for"; () = "asked for none": both kept apart.
    assert record.scopes_requested is None
    assert record.scopes_granted == []
    assert record.actors == record.reasons == []
    # The default time is now, in UTC.
    assert abs(record.at - datetime.now(UTC)) < timedelta(minutes=1)

    await log.record(event(scopes_requested=()))
    assert (await log.query(AuditQuery())).items[0].scopes_requested == []


async def test_nothing_is_written_before_a_flush(log: AuditLog, engine: AsyncEngine) -> None:
    # The hot path does not wait for its INSERT.
    await log.record(event())
    assert await rows_in_table(engine) == 0
    await log.flush()
    assert await rows_in_table(engine) == 1


# --------------------------------------------------------------------------- batching


async def test_records_are_kept_up_to_500_and_written_100_at_a_time(
    log: AuditLog, engine: AsyncEngine
) -> None:
    batches = counted_writes(log)
    # On SQLite none goes through the engine (its transaction held the
    # write lock across event-loop turns): the lean path writes them all.
    through_engine: list[int] = []

    def engine_insert(_conn: Any, statement: Any, multiparams: Any, *_: Any) -> None:
        if getattr(statement, "table", None) is audit_events and statement.is_insert:
            through_engine.append(len(multiparams))

    event_api.listen(engine.sync_engine, "before_execute", engine_insert)
    for n in range(499):
        await log.record(event(n))
    assert batches == []  # below a batch: left to the background writer
    await log.record(event(499))
    assert batches == [100] * 5  # 500 kept: written by the caller (back-pressure)
    for n in range(500, 1234):
        await log.record(event(n))
    await log.flush()
    assert batches == [100] * 12 + [34]
    assert await rows_in_table(engine) == 1234
    event_api.remove(engine.sync_engine, "before_execute", engine_insert)
    if engine.dialect.name == "sqlite":
        assert through_engine == []


async def test_concurrent_records_pile_up_and_are_all_written(
    log: AuditLog, engine: AsyncEngine
) -> None:
    # Records appended while one caller's flush waits on the database go past
    # a batch; that flush keeps going until the buffer is empty.
    await asyncio.gather(*(log.record(event(n)) for n in range(1100)))
    await log.flush()
    assert await rows_in_table(engine) == 1100
    assert [r.trace_id for r in await all_records(log)] == [
        f"{n:032x}" for n in reversed(range(1100))
    ]


# --------------------------------------------------------------------------- filters


@pytest.fixture
async def mixed(log: AuditLog) -> list[AuditRecord]:
    """Twelve records: users alice/bob, targets inventory/sales, allow/deny, a second apart."""
    for n in range(12):
        await log.record(
            event(
                n,
                subject="alice" if n % 2 == 0 else "bob",
                target="inventory" if n % 3 == 0 else "sales",
                decision="allow" if n % 4 else "deny",
                outcome="ok" if n % 4 else "denied",
            )
        )
    return list(reversed(await all_records(log)))  # oldest first


def traces(page_items: list[AuditRecord]) -> list[int]:
    return [int(r.trace_id, 16) for r in page_items]


# Each test below costs a fresh database per backend, so related read-only
# checks on the same twelve records share one test.


async def test_filters(log: AuditLog, mixed: list[AuditRecord]) -> None:
    assert traces((await log.query(AuditQuery(user="alice"))).items) == [10, 8, 6, 4, 2, 0]
    assert traces((await log.query(AuditQuery(agent="inventory"))).items) == [9, 6, 3, 0]
    denied = (await log.query(AuditQuery(decision="deny"))).items
    assert traces(denied) == [8, 4, 0]
    assert all(r.outcome == "denied" for r in denied)
    # Filters combine with AND.
    combined = AuditQuery(user="alice", agent="inventory", decision="deny")
    assert traces((await log.query(combined)).items) == [0]
    # No match: an empty page, no cursor.
    nobody = await log.query(AuditQuery(user="carol"))
    assert (nobody.items, nobody.next_cursor) == ([], None)


async def test_time_filters(log: AuditLog, mixed: list[AuditRecord]) -> None:
    # since is inclusive, until exclusive.
    window = AuditQuery(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=7))
    assert traces((await log.query(window)).items) == [6, 5, 4, 3]
    # A naive time is read as UTC.
    naive = (T0 + timedelta(seconds=9)).replace(tzinfo=None)
    assert traces((await log.query(AuditQuery(since=naive))).items) == [11, 10, 9]
    assert traces((await log.query(AuditQuery(until=naive))).items) == list(reversed(range(9)))


async def test_since_in_another_timezone(
    log: AuditLog,
    mixed: list[AuditRecord],
    database_url: str | None,
    request: pytest.FixtureRequest,
) -> None:
    # 12:00:09Z written as 14:00:09+02:00 -- the same instant.
    since = (T0 + timedelta(seconds=9)).astimezone(timezone(timedelta(hours=2)))
    assert traces((await log.query(AuditQuery(since=since))).items) == [11, 10, 9]


async def test_non_utc_event_time_round_trips(
    log: AuditLog, database_url: str | None, request: pytest.FixtureRequest
) -> None:
    at = datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    await log.record(event(at=at))
    assert (await log.query(AuditQuery())).items[0].at == at  # 12:00Z


async def test_after_id_tails_oldest_first(log: AuditLog, mixed: list[AuditRecord]) -> None:
    page = await log.query(AuditQuery(after_id=mixed[8].id, limit=2))
    assert traces(page.items) == [9, 10]
    # Tailing continues from the last id seen, not from a cursor.
    assert page.next_cursor is None
    rest = await log.query(AuditQuery(after_id=page.items[-1].id))
    assert traces(rest.items) == [11]
    assert (await log.query(AuditQuery(after_id=rest.items[-1].id))).items == []
    # With a filter.
    bob = await log.query(AuditQuery(after_id=0, user="bob"))
    assert traces(bob.items) == [1, 3, 5, 7, 9, 11]


# --------------------------------------------------------------------------- paging and export


async def test_cursor_pages_newest_first(log: AuditLog, mixed: list[AuditRecord]) -> None:
    seen: list[int] = []
    query = AuditQuery(limit=5)
    pages = 0
    while True:
        page = await log.query(query)
        pages += 1
        seen += traces(page.items)
        if page.next_cursor is None:
            break
        assert page.next_cursor == str(page.items[-1].id)
        query = query.model_copy(update={"cursor": page.next_cursor})
    assert pages == 3
    assert seen == list(reversed(range(12)))

    # A page that ends exactly at the last record has no cursor.
    assert (await log.query(AuditQuery(limit=12))).next_cursor is None
    assert (await log.query(AuditQuery(limit=11))).next_cursor is not None

    # Paging with a filter.
    first = await log.query(AuditQuery(user="alice", limit=4))
    assert traces(first.items) == [10, 8, 6, 4]
    second = await log.query(AuditQuery(user="alice", limit=4, cursor=first.next_cursor))
    assert traces(second.items) == [2, 0]
    assert second.next_cursor is None

    # The largest cursor the database can compare with still works.
    assert len((await log.query(AuditQuery(cursor=str(2**63 - 1)))).items) == 12


async def test_invalid_cursor_is_refused(log: AuditLog) -> None:
    # One test, not a parametrization: each database case costs a fresh database.
    for cursor in ["", "abc", "-1", "1.5", " 1", "1 ", "0x10", "1" * 20]:
        with pytest.raises(InvalidAuditCursor):
            await log.query(AuditQuery(cursor=cursor))


async def test_non_ascii_digit_cursor_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidAuditCursor):
        await log.query(AuditQuery(cursor="²"))


async def test_cursor_beyond_bigint_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidAuditCursor):
        await log.query(AuditQuery(cursor="9" * 19))


def test_after_id_beyond_bigint_is_refused() -> None:
    with pytest.raises(ValidationError):
        AuditQuery(after_id=2**63)


@pytest.mark.parametrize(
    "changes", [{"after_id": -1}, {"limit": 0}, {"limit": 1001}, {"decision": "maybe"}]
)
def test_query_bounds(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AuditQuery(**changes)


async def test_export_yields_everything_newest_first(log: AuditLog, engine: AsyncEngine) -> None:
    assert await all_records(log) == []  # nothing yet: nothing exported
    # More than one export page (1000) to cross a cursor boundary.
    for n in range(1205):
        await log.record(event(n, decision="allow" if n % 2 else "deny"))
    exported = await all_records(log)
    assert [int(r.trace_id, 16) for r in exported] == list(reversed(range(1205)))
    assert len({r.id for r in exported}) == 1205

    denied = [r async for r in log.export(AuditQuery(decision="deny", after_id=5, limit=3))]
    # export ignores after_id/limit: every match, newest first.
    assert [int(r.trace_id, 16) for r in denied] == list(reversed(range(0, 1205, 2)))


# --------------------------------------------------------------------------- failures


async def test_failed_flush_keeps_records_for_retry(
    unmigrated_database_url: str | None, tmp_path: Path
) -> None:
    # The audit table does not exist yet: every INSERT fails until it does.
    engine = create_engine(database(unmigrated_database_url, tmp_path))
    try:
        log = AuditLog(engine)
        for n in range(3):
            await log.record(event(n))
        with pytest.raises(Exception, match="audit_events"):  # driver-specific type
            await log.flush()
        with pytest.raises(Exception, match="audit_events"):
            await log.flush()  # a second failure does not duplicate or drop anything

        await upgrade(engine)  # the database works again
        await log.flush()
        assert [int(r.trace_id, 16) for r in await all_records(log)] == [2, 1, 0]
    finally:
        await engine.dispose()


async def test_failed_batch_flush_from_record_keeps_every_record(
    unmigrated_database_url: str | None, tmp_path: Path
) -> None:
    engine = create_engine(database(unmigrated_database_url, tmp_path))
    try:
        log = AuditLog(engine)
        for n in range(520):
            await log.record(event(n))  # the outage never fails the caller
        assert log.failing_since is not None

        await upgrade(engine)
        await log.flush()
        exported = await all_records(log)
        assert len(exported) == 520  # none lost, none written twice
        assert [int(r.trace_id, 16) for r in exported] == list(reversed(range(520)))
        assert log.failing_since is None
    finally:
        await engine.dispose()


async def test_close_flushes_or_logs_what_it_cannot_write(
    unmigrated_database_url: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(database(unmigrated_database_url, tmp_path))
    try:
        log = AuditLog(engine)
        await log.record(event(7))
        await log.close()  # no table: shutdown must not raise, and logs the record
        spilled = [r for r in caplog.records if "not written at shutdown" in r.getMessage()]
        assert len(spilled) == 1 and f'"trace_id": "{7:032x}"' in spilled[0].getMessage()
        await upgrade(engine)
        await log.record(event(8))
        await log.close()
        assert await rows_in_table(engine) == 1
    finally:
        await engine.dispose()


async def test_a_full_buffer_during_an_outage_goes_to_the_log(
    unmigrated_database_url: str | None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit, "MAX_BUFFERED", 600)
    engine = create_engine(database(unmigrated_database_url, tmp_path))
    try:
        log = AuditLog(engine)
        for n in range(610):
            await log.record(event(n))
        spilled = [r for r in caplog.records if "audit buffer full" in r.getMessage()]
        assert len(spilled) == 10
        await upgrade(engine)
        await log.flush()
        assert await rows_in_table(engine) == 600
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- background writer


async def wait_for_rows(engine: AsyncEngine, count: int, within: float) -> None:
    """Until ``count`` rows are written (failing past ``within``)."""

    async def written() -> bool:
        return await rows_in_table(engine) >= count

    await wait_for_awaited(
        written, seconds=within, every=0.01, what="the background writer did not flush"
    )


@contextlib.asynccontextmanager
async def running(log: AuditLog) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(log.run_forever())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_run_forever_flushes_in_the_background(log: AuditLog, engine: AsyncEngine) -> None:
    async with running(log):
        await log.record(event(0))
        await wait_for_rows(engine, 1, within=30)
        await log.record(event(1))
        await log.record(event(2))
        await wait_for_rows(engine, 3, within=30)


def test_the_writer_is_woken_by_a_record_and_flushes_after_its_gather(tmp_path: Path) -> None:
    # On a clock of the test's own (`tests/support/clock.py`): the writer
    # flushes once, one gather period after a record, and not at all while
    # nothing is recorded; the database is not the point here.
    gather = 5.0
    flushed_at: list[float] = []

    async def scenario() -> None:
        engine = create_engine(database(None, tmp_path))
        log = AuditLog(engine, flush_seconds=gather)
        loop = asyncio.get_running_loop()
        first = asyncio.Event()

        async def flush(until: int | None = None) -> None:
            flushed_at.append(loop.time())
            first.set()

        log.flush = flush  # type: ignore[method-assign]
        async with running(log):
            await asyncio.sleep(3600)  # an hour with nothing recorded
            assert flushed_at == []
            recorded = loop.time()
            await log.record(event(0))
            await first.wait()
            await asyncio.sleep(3600)
        assert flushed_at == [recorded + gather]
        await engine.dispose()

    fake_clock.run(scenario())


async def test_run_forever_retries_after_a_failure(
    unmigrated_database_url: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(database(unmigrated_database_url, tmp_path))
    try:
        log = AuditLog(engine, flush_seconds=0.01)
        async with running(log) as task:
            await log.record(event())
            await wait_for_async(
                lambda: "audit records cannot be written" in caplog.text, seconds=30, every=0.01
            )
            assert not task.done()  # a failure does not end the writer

            await upgrade(engine)
            # Retried with backoff: however long the upgrade took (the delay
            # doubles meanwhile), the next attempt comes within the longest.
            await wait_for_rows(engine, 1, within=audit.MAX_RETRY_SECONDS + 10)
    finally:
        await engine.dispose()


async def test_a_row_the_database_refuses_does_not_block_the_others(
    log: AuditLog, database_url: str | None
) -> None:
    if database_url is None:
        pytest.skip("SQLite does not enforce VARCHAR lengths; PostgreSQL refuses the row")
    await log.record(event(1))
    await log.record(event(2, target="x" * 200))  # longer than the column allows (128)
    await log.record(event(3))
    await log.flush()
    await log.record(event(4))
    await log.flush()
    assert traces((await log.query(AuditQuery())).items) == [4, 3, 1]


class _DownAfter:
    """The app's engine until its ``n``-th transaction, which finds the
    database gone (an outage, not a refusal): a unit check of the writer's
    bookkeeping, the writes themselves real."""

    def __init__(self, engine: AsyncEngine, n: int) -> None:
        self._engine, self._n, self.begun = engine, n, 0

    def begin(self) -> Any:
        self.begun += 1
        if self.begun == self._n:
            raise OperationalError("INSERT", {}, ConnectionResetError("the database went away"))
        return self._engine.begin()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


async def test_an_outage_while_writing_one_by_one_keeps_the_rest(
    log: AuditLog, engine: AsyncEngine, database_url: str | None
) -> None:
    if database_url is None:
        pytest.skip("SQLite does not enforce VARCHAR lengths; PostgreSQL refuses the row")
    for n in (1, 2, 3, 4):
        await log.record(event(n, **({"target": "x" * 200} if n == 2 else {})))
    # The batch (lean path, then the engine's), then row by row: 1, 2
    # (refused, dropped), and the database is gone at 3.
    log._engine = _DownAfter(engine, 5)  # type: ignore[assignment]
    with pytest.raises(OperationalError):
        await log.flush()
    log._engine = engine
    await log.flush()
    assert traces((await log.query(AuditQuery())).items) == [4, 3, 1]  # none lost, none twice
