"""The SQLite write gate (`gateway.storage.sqlite_gate.FileGate`) holds
across processes: a writer in another process (a second worker, the CLI)
waits for the holder and gets the gate the moment it is let go; a wait has
its deadline; a forked child does not inherit its parent's hold; a killed
holder's hold ends with it."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.storage.db import create_engine
from gateway.storage.sqlite_gate import FileGate, GatedConnection, gate_for
from gateway.storage.statements import Sql, statement_runner

ROOT = Path(__file__).resolve().parents[3]

_HOLDER = """
import sys
from gateway.storage.sqlite_gate import gate_for
gate = gate_for(sys.argv[1])
assert gate.acquire(timeout=5)
print("held", flush=True)
sys.stdin.readline()
gate.release()
print("free", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the gate of ``tmp_path / "gw.db"`` until it
    reads a line."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "gw.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    with process:  # its pipes closed at the end
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process
        process.kill()


def _let_go(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == "free"


def test_another_process_holding_the_gate_is_waited_for(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    gate = gate_for(str(tmp_path / "gw.db"))
    assert not gate.acquire(blocking=False)
    began = time.monotonic()
    assert not gate.acquire(timeout=0.2)
    assert time.monotonic() - began >= 0.2
    # A failed try leaves the gate free for this process's next writer.
    _let_go(holder)
    assert gate.acquire(timeout=5)
    gate.release()
    assert gate.acquire(blocking=False)
    gate.release()


def test_a_waiting_writer_gets_the_gate_once_it_is_let_go(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    gate = gate_for(str(tmp_path / "gw.db"))
    taken: list[bool] = []
    waiting = threading.Thread(target=lambda: taken.append(gate.acquire(timeout=30)))
    waiting.start()
    # The waiter is trying (not yet through: the other process holds it).
    waiting.join(timeout=0.2)
    assert waiting.is_alive() and taken == []
    _let_go(holder)
    waiting.join(timeout=30)
    assert taken == [True]
    gate.release()


def test_a_connection_and_a_runner_wait_for_another_process(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = str(tmp_path / "gw.db")
    connection = sqlite3.connect(path, factory=GatedConnection, timeout=0.2)
    try:
        connection.execute("CREATE TABLE t (v INTEGER)")  # DDL: SQLite's own lock only
        # As SQLite would say it: the gate was not had within the busy timeout.
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            connection.execute("INSERT INTO t (v) VALUES (1)")
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        connection.close()

    async def main() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        runner = statement_runner(engine)
        try:
            where: list[str] = []

            def write(sql: Sql) -> None:
                where.append(threading.current_thread().name)
                sql.rows("CREATE TABLE IF NOT EXISTS t (v INTEGER)", {})

            writing = asyncio.ensure_future(runner(write))
            await asyncio.sleep(0.2)
            assert not writing.done()  # not on the loop: in the runner's thread, waiting
            await asyncio.to_thread(_let_go, holder)
            await asyncio.wait_for(writing, 30)
            assert where and where[0].startswith("coordination-sqlite")
        finally:
            await runner.aclose()
            await engine.dispose()

    asyncio.run(main())


def test_a_killed_holder_lets_go(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    gate = gate_for(str(tmp_path / "gw.db"))
    assert not gate.acquire(blocking=False)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert gate.acquire(timeout=5)
    gate.release()


def _try_in_child(path: str, let_go: Any, answers: Any) -> None:
    # The gate the parent holds, copied by fork with the parent's thread
    # lock held and its open file (whose flock is the parent's).
    gate = gate_for(path)
    answers.put(gate.acquire(blocking=False))  # the parent's hold holds here too
    let_go.set()
    taken = gate.acquire(timeout=10)  # once the parent lets go: nothing of it left held
    answers.put(taken)


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_does_not_share_its_parents_hold(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.db")
    gate = gate_for(path)
    context = multiprocessing.get_context("fork")
    let_go = context.Event()
    answers = context.SimpleQueue()
    assert gate.acquire(timeout=5)
    try:
        child = context.Process(target=_try_in_child, args=(path, let_go, answers))
        child.start()
        assert let_go.wait(timeout=30)
    finally:
        gate.release()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert [answers.get(), answers.get()] == [False, True]


def test_without_its_side_file_the_gate_holds_for_this_process_only(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    os.mkdir(f"{path}-gate")  # cannot be opened as a file
    gate = FileGate(str(path))
    assert gate.acquire(timeout=1)
    assert not gate.acquire(blocking=False)
    gate.release()
    assert gate.acquire(blocking=False)
    gate.release()


def _open_side_files(side: str) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == side)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="/proc")
def test_a_gate_nobody_uses_closes_its_side_file(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.db")
    side = os.path.realpath(path) + "-gate"
    gate = gate_for(path)
    assert gate.acquire(timeout=5)
    gate.release()
    assert _open_side_files(side) == 1
    del gate
    gc.collect()
    assert _open_side_files(side) == 0
    again = gate_for(path)  # a new one, as any other
    assert again.acquire(blocking=False)
    again.release()
