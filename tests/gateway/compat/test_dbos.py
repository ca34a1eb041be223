"""The DBOS private names `gateway.compat.dbos` touches are where it expects
them: each test fails if an upgrade of dbos moves one. A real DBOS, launched
on an SQLite file as the gateway launches it."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dbos import DBOS, DBOSConfig, SetWorkflowID
from sqlalchemy import event

from gateway.compat import dbos as compat
from tests.support.waiting import wait_for


@DBOS.workflow(name="compat_test_answer")
def _answer() -> str:
    return "answered"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[DBOS]:
    config: DBOSConfig = {
        "name": "compat-test",
        "system_database_url": f"sqlite:///{tmp_path / 'dbos.db'}",
        # The gateway's poll with one process on SQLite (gateway.flows.mailbox).
        "notification_listener_polling_interval_sec": 60.0,
        "enable_otlp": False,
        "log_level": "WARNING",
    }
    dbos = DBOS(config=config)
    DBOS.launch()
    try:
        yield dbos
    finally:
        DBOS.destroy()


def test_the_sqlite_listener_is_left_out_of_the_threads_destroy_joins(launched: DBOS) -> None:
    records = _Records()
    logging.getLogger("dbos").addHandler(records)
    try:
        listener = compat.leave_listener_unjoined(launched)
        assert listener is not None
        assert listener.daemon
        assert listener not in launched._background_threads
        DBOS.destroy()
    finally:
        logging.getLogger("dbos").removeHandler(records)
    # Joined, it would have been waited for 10 s and named in a warning.
    assert not any("did not exit" in m for m in records.messages), records.messages


def test_nobody_waits_here_is_a_signal_of_none(launched: DBOS) -> None:
    system, signal = compat.waiter_signal(launched, "run-nobody", "nothing")
    assert signal is None
    assert hasattr(system, "recv_check")


@DBOS.workflow(name="compat_test_waiter")
def _waiting(topic: str) -> object:
    return DBOS.recv(topic, timeout_seconds=120)


def test_a_run_waiting_here_is_found_and_woken_by_its_signal(launched: DBOS) -> None:
    with SetWorkflowID("w-waits"):
        handle = DBOS.start_workflow(_waiting, "word")
    wait_for(
        lambda: compat.waiter_signal(launched, "w-waits", "word")[1],
        what="the run waiting in DBOS.recv",
    )
    assert compat.waiter_signal(launched, "w-waits", "other")[1] is None
    assert compat.waiter_signal(launched, "w-other", "word")[1] is None
    DBOS.send("w-waits", "hello", "word")  # on SQLite: read at the listener's next poll
    system, signal = compat.waiter_signal(launched, "w-waits", "word")
    started = time.monotonic()
    system.recv_check("w-waits", "word", signal)
    assert handle.get_result() == "hello"
    # Well within both polls (the listener's minute, recv's own minute).
    assert time.monotonic() - started < 30


def _as_thread(name: str, call: Callable[[], object]) -> object:
    """``call`` in a thread named ``name`` (DBOS's polling threads are told by name)."""
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(call()), name=name)
    thread.start()
    thread.join()
    return found[0]


def test_dbos_polls_through_the_names_quiet_when_idle_gates(launched: DBOS) -> None:
    names = [thread.name for thread in launched._background_threads]
    assert any(name.endswith("(queue_thread)") for name in names), names
    assert any(name.endswith("(dynamic_scheduler_loop)") for name in names), names
    gates = compat.quiet_when_idle(launched, idle_seconds=3600)
    system = launched._sys_db
    # The first look reads; a polling thread's next one within the hour is
    # answered from it, without a statement.
    # Counted by thread: DBOS's own queue thread, and its other background
    # statements, may run in the same moment.
    reads: list[tuple[str, str]] = []
    event.listen(
        system.engine,
        "before_cursor_execute",
        lambda *a: reads.append((threading.current_thread().name, a[2])),
    )
    _as_thread("sb-test-1 (queue_thread)", lambda: system.list_queues(application_name=None))
    _as_thread("sb-test-2 (queue_thread)", lambda: system.list_queues(application_name=None))
    ours = [(name, read) for name, read in reads if name.startswith("sb-test-")]
    listed = [name for name, read in ours if "FROM main.queues" in read]
    # At most the first reads (none if DBOS's own thread just looked); the
    # second is answered from that look.
    assert len(listed) <= 1 and "sb-test-2 (queue_thread)" not in listed, reads
    # Work put on the internal queue here opens its gate at once.
    assert gates.due(compat.QUEUE) and not gates.due(compat.QUEUE)
    gates.kick(compat.QUEUE)
    assert gates.due(compat.QUEUE)


def test_a_gate_asked_for_a_longer_pace_keeps_it() -> None:
    gates = compat.IdleGates(idle_seconds=30.0)
    assert gates.due("job a", compat.JOBS_SECONDS) and gates.due("job b")
    # Both looked a minute ago: past the idle pace, within the jobs' pace.
    gates._looked = {name: at - 60.0 for name, at in gates._looked.items()}
    assert not gates.due("job a", compat.JOBS_SECONDS)
    assert gates.due("job b")


def _status(path: Path, workflow_id: str) -> tuple[str, str]:
    """A workflow's status and executor, as DBOS stored them."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        row = conn.execute(
            "SELECT status, executor_id FROM workflow_status WHERE workflow_uuid = ?",
            (workflow_id,),
        ).fetchone()
    return str(row[0]), str(row[1])


def _left_pending(path: Path, workflow_id: str, executor_id: str) -> None:
    """A workflow as an executor leaves it while running it (or when killed then)."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn, conn:
        conn.execute(
            "UPDATE workflow_status SET status = 'PENDING', executor_id = ? WHERE workflow_uuid = ?",
            (executor_id, workflow_id),
        )


def _answered(workflow_id: str) -> None:
    with SetWorkflowID(workflow_id):
        assert DBOS.start_workflow(_answer).get_result() == "answered"


def test_recovery_takes_a_gone_executors_run_once_and_only_its(
    launched: DBOS, tmp_path: Path
) -> None:
    """Why the takeover (`gateway.flows.takeover`) calls DBOS's private
    recovery: it moves a run only while it is PENDING under an executor named
    gone, so replicas recovering one dead replica start each run once and a
    live replica's run is left alone -- where the public `resume_workflow`
    puts back any run not ended, a live one's too. When an upgrade changes
    either, this fails: the public API may then serve."""
    path = tmp_path / "dbos.db"
    _answered("w-gone")
    _left_pending(path, "w-gone", "gone")
    _answered("w-live")
    _left_pending(path, "w-live", "live")
    recovered = compat.recover_pending_workflows(["gone"])
    assert [handle.get_workflow_id() for handle in recovered] == ["w-gone"]
    assert _status(path, "w-live") == ("PENDING", "live")  # alive: not moved
    wait_for(lambda: _status(path, "w-gone")[0] == "SUCCESS" or None, what="the run recovered here")
    assert _status(path, "w-gone")[1] != "gone"  # run by a live executor, which owns it
    assert compat.recover_pending_workflows(["gone"]) == []  # not put back a second time
    DBOS.resume_workflow("w-live")
    # The public resume takes the live executor's run from it regardless.
    assert _status(path, "w-live") != ("PENDING", "live")
    wait_for(lambda: _status(path, "w-live")[0] == "SUCCESS" or None, what="the run resumed")
