"""The SQLite write gate (`gateway.storage.sqlite_gate.FileGate`) holds
across processes: a writer in another process (a second worker, the CLI)
waits for the holder and gets the gate the moment it is let go; a wait has
its deadline; a forked child does not inherit its parent's hold; a killed
holder's hold ends with it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.storage.sqlite_gate import FileGate, gate_for

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
    assert holder.stdin is not None
    holder.stdin.write("\n")  # let go while this process waits below
    holder.stdin.flush()
    assert gate.acquire(timeout=10)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "free"
    finally:
        gate.release()


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
