"""The lean statement path (`gateway.storage.statements`) writes and reads
values as the engine does: a row written one way reads the same the other
way, on SQLite (the runner's own connections) and PostgreSQL (the engine);
a failed operation rolls back; an unknown column is refused; SQLite's own
errors are read as outages, as SQLAlchemy's wrapping of them is."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.flows import step_records
from gateway.storage import statements
from gateway.storage.db import TARGET_METADATA, create_engine
from gateway.storage.flow_tables import flow_steps
from gateway.storage.outages import outage_of
from gateway.storage.sqlite_gate import gate_for
from gateway.storage.statements import Sql, statement_runner
from gateway.storage.typed_statement import Statement
from tests.support.databases import coordination_backend

REDIS = "redis://127.0.0.1:1"  # unused: no Redis backend here


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with coordination_backend(request.param, tmp_path, REDIS) as (made, _):
        yield made


VALUES: list[Any] = [None, 3, 3.5, "text", "3.5", {"a": [1, None, "b"]}, [], True]
WHEN = datetime(2026, 11, 25, 10, 30, 1, 123456, tzinfo=UTC)
_ROW = Statement(
    flow_steps,
    "SELECT output, started_at, attempts FROM flow_steps"
    " WHERE run_id = :run_id AND step_id = :step_id",
)
_ADD = Statement(
    flow_steps,
    "INSERT INTO flow_steps (run_id, step_id, kind, state, attempts, trace_id, output,"
    " started_at) VALUES (:run_id, :step_id, 'call', 'pending', 0, 't', :output, :started_at)",
)


def _naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=None) if value.tzinfo else value


def test_rows_written_either_way_read_the_same(url: str) -> None:
    async def main() -> None:
        await _written_either_way_read_the_same(create_engine(url))

    anyio.run(main)


def test_an_in_memory_database_reads_as_sqlalchemy_does() -> None:
    """The engine's own path (`gateway.storage.cursor_sql`) on SQLite: a
    timestamp and JSON as SQLAlchemy's SQLite dialect writes and reads them
    (its own DATETIME and JSON types, not the generic ones)."""

    async def main() -> None:
        engine = create_engine("sqlite+aiosqlite://")
        async with engine.begin() as conn:
            for metadata in TARGET_METADATA:
                await conn.run_sync(metadata.create_all)
        await _written_either_way_read_the_same(engine)

    anyio.run(main)


async def _written_either_way_read_the_same(engine: AsyncEngine) -> None:
    runner = statement_runner(engine)
    try:
        for index, value in enumerate(VALUES):
            lean, alchemy = f"lean{index}", f"alchemy{index}"

            def add(sql: Sql, step: str = lean, output: Any = value) -> None:
                params = {"run_id": "r", "step_id": step, "output": output}
                sql.typed(_ADD, {**params, "started_at": WHEN})

            await runner(add)
            async with engine.begin() as conn:
                await conn.execute(
                    insert(flow_steps).values(
                        run_id="r",
                        step_id=alchemy,
                        kind="call",
                        state="pending",
                        attempts=0,
                        trace_id="t",
                        output=value,
                        started_at=WHEN,
                    )
                )
            for step in (lean, alchemy):
                ours = await runner.read(
                    lambda sql, s=step: sql.typed(_ROW, {"run_id": "r", "step_id": s})
                )
                async with engine.connect() as conn:
                    theirs = (
                        await conn.execute(
                            select(flow_steps.c.output, flow_steps.c.started_at).where(
                                flow_steps.c.step_id == step
                            )
                        )
                    ).one()
                assert ours[0]["output"] == theirs.output == value, (step, ours, theirs)
                assert _naive_utc(ours[0]["started_at"]) == _naive_utc(theirs.started_at)
                assert _naive_utc(theirs.started_at) == WHEN.replace(tzinfo=None)
    finally:
        await runner.aclose()
        await engine.dispose()


def test_a_failed_operation_stores_nothing(url: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        runner = statement_runner(engine)
        try:

            def half(sql: Sql) -> None:
                params = {"run_id": "r", "step_id": "half", "output": 1, "started_at": WHEN}
                sql.typed(_ADD, params)
                raise RuntimeError("crashed between two statements")

            with pytest.raises(RuntimeError):
                await runner(half)
            row = await runner.read(step_records.step_row, "r", "half")
            assert row is None
            # and the runner goes on working
            values = {"kind": "call", "trace_id": "t", "state": "running"}
            await runner(step_records.write_step, "r", "after", False, values)
            row = await runner.read(step_records.step_row, "r", "after")
            assert row is not None and row["state"] == "running" and row["attempts"] == 0
        finally:
            await runner.aclose()
            await engine.dispose()

    anyio.run(main)


def test_a_replayed_write_never_moves_a_settled_step_back(url: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        runner = statement_runner(engine)
        try:
            first: dict[str, Any] = {"kind": "parallel", "trace_id": "t", "state": "completed"}
            first |= {"started_at": WHEN, "finished_at": WHEN}
            await runner(step_records.write_step, "r", "p", True, first)
            later = datetime(2026, 11, 26, tzinfo=UTC)
            again = {"state": "running", "started_at": later}
            await runner(step_records.write_step, "r", "p", True, again)
            same = {"state": "completed", "started_at": later, "finished_at": later}
            await runner(step_records.write_step, "r", "p", True, same)
            row = await runner.read(step_records.step_row, "r", "p")
            assert row is not None and row["state"] == "completed"
            assert _naive_utc(row["started_at"]) == WHEN.replace(tzinfo=None)
            assert _naive_utc(row["finished_at"]) == WHEN.replace(tzinfo=None)
        finally:
            await runner.aclose()
            await engine.dispose()

    anyio.run(main)


def test_an_unknown_column_is_refused(url: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        runner = statement_runner(engine)
        try:
            values = {"state": "x", "state = 'x'; DROP TABLE flow_steps; --": 1}
            with pytest.raises(ValueError, match="no column"):
                await runner(step_records.write_step, "r", "s", False, values)
        finally:
            await runner.aclose()
            await engine.dispose()

    anyio.run(main)


def test_sqlite_errors_are_outages_unless_the_data_is_refused() -> None:
    assert outage_of(sqlite3.OperationalError("database is locked")) is not None
    assert outage_of(sqlite3.IntegrityError("UNIQUE constraint failed")) is None


def test_typed_many_writes_every_row_as_typed_writes_one(url: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        runner = statement_runner(engine)
        try:

            def add(sql: Sql) -> None:
                sql.typed_many(
                    _ADD,
                    [
                        {"run_id": "m", "step_id": f"s{k}", "output": v, "started_at": WHEN}
                        for k, v in enumerate(VALUES)
                    ],
                )

            await runner.patiently(add)
            for k, value in enumerate(VALUES):
                row = await runner.read(
                    lambda sql, s=f"s{k}": sql.typed(_ROW, {"run_id": "m", "step_id": s})
                )
                assert row[0]["output"] == value
                assert _naive_utc(row[0]["started_at"]) == WHEN.replace(tzinfo=None)
        finally:
            await runner.aclose()
            await engine.dispose()

    anyio.run(main)


def test_patiently_waits_for_the_lock_on_the_loop_not_in_a_thread(tmp_path: Path) -> None:
    # SQLite: an operation nobody waits for at once runs on the event loop's
    # own connection once another writer lets the lock go -- never in the
    # runner's thread, whose hold of the lock stretches while it waits for
    # the interpreter -- and in that thread only if the lock stays taken.
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"

    async def main() -> None:
        engine = create_engine(url)
        runner = statement_runner(engine)
        try:
            threads: list[str] = []

            def where(_sql: Sql) -> None:
                threads.append(threading.current_thread().name)

            gate = gate_for(str(tmp_path / "gw.db"))
            assert gate.acquire(timeout=5)  # another writer of the process
            letting_go = threading.Timer(0.1, gate.release)
            with pytest.MonkeyPatch.context() as patch:
                # Tries enough to outlast the release however late it runs.
                patch.setattr(statements, "_PATIENT_TRIES", 10_000)
                letting_go.start()
                await runner.patiently(where)
            letting_go.join()
            assert threads == [threading.main_thread().name]

            assert gate.acquire(timeout=5)
            try:
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(statements, "_PATIENT_TRIES", 2)
                    waiting = asyncio.ensure_future(runner.patiently(where))
                    await asyncio.sleep(0.2)  # the tries are over: the thread waits for the lock
                    assert not waiting.done()
            finally:
                gate.release()
            await waiting
            assert threads[1].startswith("coordination-sqlite")
        finally:
            await runner.aclose()
            await engine.dispose()

    asyncio.run(main())


def test_the_loops_connection_opens_while_another_holds_the_file_a_moment(
    tmp_path: Path,
) -> None:
    # A connection that does not wait for locks (the event loop's) is told
    # "database is locked" by its first statement while another connection
    # holds the file exclusively -- as the last connection of a process does
    # while it closes (its checkpoint), or one recovering the WAL. Its
    # opening waits that moment out; its transactions still never wait.
    path = tmp_path / "gw.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def main() -> None:
        engine = create_engine(url)
        runner = statement_runner(engine)
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            holder.execute("PRAGMA locking_mode=EXCLUSIVE")
            holder.execute("BEGIN EXCLUSIVE")
            holder.execute("CREATE TABLE t (v INTEGER)")
            holder.execute("COMMIT")  # the file stays locked until it closes
            letting_go = threading.Timer(0.2, holder.close)
            letting_go.start()
            rows = await runner.read(lambda sql: sql.rows("SELECT count(*) FROM t", {}))
            letting_go.join()
            assert [tuple(row) for row in rows] == [(0,)]
        finally:
            holder.close()
            await runner.aclose()
            await engine.dispose()

    asyncio.run(main())
