"""The DBOS private names `gateway.compat.dbos` touches are where it expects
them: each test fails if an upgrade of dbos moves one. A real DBOS, launched
on an SQLite file as the gateway launches it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbos import DBOS, DBOSConfig

from gateway.compat import dbos as compat


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
    system, signal = compat.waiter_signal("run-nobody", "nothing")
    assert signal is None
    assert hasattr(system, "recv_check")


@DBOS.workflow()
async def _the_loop_it_runs_on() -> int:
    return id(asyncio.get_running_loop())


def test_dbos_runs_its_coroutines_on_the_loop_it_is_given(tmp_path: Path) -> None:
    config: DBOSConfig = {
        "name": "compat-loop",
        "system_database_url": f"sqlite:///{tmp_path / 'dbos.db'}",
        "enable_otlp": False,
        "log_level": "WARNING",
    }

    async def run() -> tuple[int, int]:
        dbos = DBOS(config=config)
        compat.adopt_running_loop(dbos)
        # Launched off the loop, as the gateway launches it.
        await asyncio.to_thread(DBOS.launch)
        queue = await DBOS.register_queue_async("compat-loop")
        # A queued workflow is started by DBOS's queue thread, outside any
        # loop: it runs on the loop DBOS adopted, else on one of DBOS's own.
        handle = await queue.enqueue_async(_the_loop_it_runs_on)
        return id(asyncio.get_running_loop()), await handle.get_result()

    try:
        ours, its = asyncio.run(run())
    finally:
        DBOS.destroy()
    assert its == ours
