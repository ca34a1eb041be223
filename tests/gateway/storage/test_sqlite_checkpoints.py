"""SQLite's WAL is checkpointed by one background thread, not in a
writer's COMMIT (`gateway.storage.sqlite_checkpoints`): the process's
connections move the automatic checkpoint to a backstop; a pass copies the
WAL into the file without its gate, and finishes a long one holding it so
that the WAL starts over; a file that is gone is dropped, not created."""

from __future__ import annotations

import gc
import os
import sqlite3
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.storage import sqlite_checkpoints
from gateway.storage.sqlite_checkpoints import BACKSTOP_PAGES, CHECKPOINTS, Checkpoints, _checkpoint
from gateway.storage.sqlite_gate import FileGate, GatedConnection, gate_for
from gateway.storage.statements import _connect

ROWS = 3_000  # of 1 KB: ~750 pages, in the WAL until a checkpoint
WAIT_SECONDS = 20.0


def _wal_database(path: Path) -> sqlite3.Connection:
    """A WAL file written by a connection that never checkpoints (plain
    sqlite3, watched by nobody)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    return connection


def _write(connection: sqlite3.Connection, rows: int, start: int = 0) -> None:
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO t (id, body) VALUES (?, ?)",
        [(start + i, os.urandom(1024)) for i in range(rows)],
    )
    connection.execute("COMMIT")


def _run_once_with_the_gate_held(checkpoints: Checkpoints, gate: FileGate) -> int:
    """A pass in another thread while this one holds ``gate``, as a writer of
    the process would: a pass that waited for the gate past `WAIT_SECONDS`
    fails the test."""
    assert gate.acquire(timeout=5)
    try:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(checkpoints.run_once).result(timeout=WAIT_SECONDS)
    finally:
        gate.release()


def _autocheckpoint(connection: sqlite3.Connection) -> int:
    return int(sqlite3.Connection.execute(connection, "PRAGMA wal_autocheckpoint").fetchone()[0])


def test_the_gateways_connections_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    _wal_database(path).close()
    gated = sqlite3.connect(path, factory=GatedConnection)
    runner = _connect(str(path), busy_seconds=0)
    try:
        assert _autocheckpoint(gated) == BACKSTOP_PAGES
        assert _autocheckpoint(runner) == BACKSTOP_PAGES
        assert os.path.realpath(path) in CHECKPOINTS.watching()
        plain = sqlite3.connect(path)
        assert _autocheckpoint(plain) == 1000  # SQLite's default, untouched elsewhere
        plain.close()
    finally:
        gated.close()
        runner.close()


def test_a_pass_copies_the_wal_into_the_file_without_taking_the_gate(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    writer = _wal_database(path)
    checkpoints = Checkpoints(thread=False)
    checkpoints.watch(str(path))
    _write(writer, ROWS)
    before = path.stat().st_size
    assert before < ROWS * 1024 / 10  # the rows are in the WAL, not the file yet
    assert _run_once_with_the_gate_held(checkpoints, gate_for(str(path))) == 1
    assert path.stat().st_size > ROWS * 1024
    assert checkpoints.run_once() == 0  # nothing written since
    # More than the WAL held: it is started over and grows past its size.
    _write(writer, 2 * ROWS, start=ROWS)
    assert checkpoints.run_once() == 1
    assert path.stat().st_size > 3 * ROWS * 1024
    assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == 3 * ROWS
    writer.close()


def test_a_file_gone_is_dropped_and_not_created_again(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    writer = _wal_database(path)
    _write(writer, 10)
    checkpoints = Checkpoints(thread=False)
    checkpoints.watch(str(path))
    writer.close()
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    assert checkpoints.run_once() == 0
    assert checkpoints.watching() == []
    # Gone between the look and the checkpoint: opened read-write only.
    assert _checkpoint(str(path)) == (False, 0)
    assert list(tmp_path.iterdir()) == []


def test_the_thread_checkpoints_what_a_gated_connection_wrote(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    _wal_database(path).close()
    gated = sqlite3.connect(path, factory=GatedConnection, isolation_level=None)
    try:
        _write(gated, ROWS)
        deadline = time.monotonic() + WAIT_SECONDS
        while path.stat().st_size < ROWS * 1024:
            assert time.monotonic() < deadline, "the WAL was not checkpointed"
            time.sleep(0.05)
    finally:
        gated.close()


def _frames(path: Path) -> int:
    """How many frames the WAL holds now (from its start: fewer after it was
    started over)."""
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        connection.close()


def _appended_during_the_first_pass(
    monkeypatch: pytest.MonkeyPatch, writer: sqlite3.Connection, gate: FileGate
) -> list[bool]:
    """Each pass's `_checkpoint` (whether ``gate`` was held then, as another
    thread sees it), the first with a writer that began
    before it and commits after it (as under steady writes): its frames are
    appended past what that pass copied, so the WAL is not started over."""
    real = sqlite_checkpoints._checkpoint
    passes: list[bool] = []

    def held() -> bool:
        with ThreadPoolExecutor(1) as pool:
            free = pool.submit(gate.acquire, False).result(timeout=WAIT_SECONDS)
        if free:
            gate.release()
        return not free

    def checkpoint(path: str) -> tuple[bool, int]:
        passes.append(held())
        if len(passes) > 1:
            return real(path)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO t (id, body) VALUES (?, ?)", (10 * ROWS, os.urandom(1024)))
        found = real(path)
        writer.execute("COMMIT")
        return found

    monkeypatch.setattr(sqlite_checkpoints, "_checkpoint", checkpoint)
    return passes


@pytest.mark.parametrize("gated_pass", [True, False])
def test_a_long_wal_appended_to_during_its_pass_is_started_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gated_pass: bool
) -> None:
    """Past `START_OVER_FRAMES`, a pass that copied what it saw copies the
    rest holding the gate, and the next writer starts the WAL over. Without
    that second pass (``gated_pass`` off: its threshold out of reach) the
    WAL goes on growing from where it was."""
    path = tmp_path / "gw.db"
    writer = _wal_database(path)
    _write(writer, ROWS)
    # Read off the file, not by `_frames`: its checkpoint would let the
    # next writer start the WAL over.
    held = (Path(f"{path}-wal").stat().st_size - 32) // (4096 + 24)
    assert held > 500
    checkpoints = Checkpoints(thread=False, start_over_frames=100 if gated_pass else 10**9)
    gate = gate_for(str(path))  # kept alive here, as a writer's connection keeps it
    checkpoints.watch(str(path), gate)
    passes = _appended_during_the_first_pass(monkeypatch, writer, gate)
    assert checkpoints.run_once() == 1  # all it saw copied, either way
    # The first pass without the gate; the second holding it.
    assert passes == ([False, True] if gated_pass else [False])
    _write(writer, 1, start=20 * ROWS)
    if gated_pass:
        assert _frames(path) < 10  # started over: the last write's frames only
    else:
        assert _frames(path) > held
    assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == ROWS + 2
    writer.close()


def test_a_gate_not_had_leaves_the_wal_to_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gw.db"
    writer = _wal_database(path)
    _write(writer, ROWS)
    checkpoints = Checkpoints(thread=False, start_over_frames=100)
    gate = gate_for(str(path))
    checkpoints.watch(str(path), gate)
    passes = _appended_during_the_first_pass(monkeypatch, writer, gate)
    monkeypatch.setattr(sqlite_checkpoints, "GATE_WAIT_SECONDS", 0.1)
    assert _run_once_with_the_gate_held(checkpoints, gate) == 0
    assert passes == [True]  # no second pass without the gate
    # Not marked done: the next pass, the gate free, finishes it.
    assert checkpoints.run_once() == 1
    _write(writer, 1, start=20 * ROWS)
    assert _frames(path) < 10
    writer.close()


def test_a_gate_nobody_writes_through_is_not_kept_alive(tmp_path: Path) -> None:
    """The thread holds a watched file's gate weakly: a gate no connection
    uses closes its side file (`sqlite_gate`), and its file is checkpointed
    without one."""
    path = tmp_path / "gw.db"
    writer = _wal_database(path)
    checkpoints = Checkpoints(thread=False, start_over_frames=100)
    gate = gate_for(str(path))
    checkpoints.watch(str(path), gate)
    seen = weakref.ref(gate)
    del gate
    gc.collect()
    assert seen() is None
    _write(writer, ROWS)
    assert checkpoints.run_once() == 1
    writer.close()
