"""A run's call in flight stops when the run is cancelled
(`gateway.flows.preemption`): at once when cancelled here, at the next read
when cancelled elsewhere; DBOS records no outcome for the stopped step. A
real DBOS, launched on an SQLite file. It fails if an upgrade of dbos makes
`DBOSWorkflowCancelledError` raised by a step record the step, or stops
reading ``DBOS.workflow_id`` inside one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dbos import DBOS, SetWorkflowID
from dbos import error as dbos_errors

from gateway.flows import preemption
from tests.support.dbos_launch import launched_dbos

_started: dict[str, asyncio.Event] = {}


async def _long_call(run_id: str) -> str:
    _started[run_id].set()
    await asyncio.sleep(3600)
    return "answered"


@DBOS.workflow(name="preemption_test_run")
async def _run(run_id: str) -> str:
    return await DBOS.run_step_async(
        {"name": "long call"}, preemption.cancellable(_long_call), run_id
    )


@pytest.fixture
async def launched(tmp_path: Path) -> AsyncIterator[None]:
    async with launched_dbos(tmp_path, "preemption-test"):
        yield


async def _started_run(run_id: str) -> asyncio.Task[str]:
    _started[run_id] = asyncio.Event()

    async def start() -> str:
        with SetWorkflowID(run_id):
            handle = await DBOS.start_workflow_async(_run, run_id)
        return await handle.get_result()

    run = asyncio.create_task(start())
    await asyncio.wait_for(_started[run_id].wait(), 30)
    return run


async def _stopped(run: asyncio.Task[str], run_id: str) -> None:
    stopped = (
        dbos_errors.DBOSWorkflowCancelledError,
        dbos_errors.DBOSAwaitedWorkflowCancelledError,
    )
    with pytest.raises(stopped):
        await asyncio.wait_for(run, 10)
    steps = await DBOS.list_workflow_steps_async(run_id)
    assert [step["function_name"] for step in steps if step["function_name"] == "long call"] == []
    status = await DBOS.get_workflow_status_async(run_id)
    assert status is not None and status.status == "CANCELLED"
    assert preemption._poller is None  # nothing in flight: no poll left sleeping


async def test_a_cancellation_here_stops_the_call_at_once(launched: None) -> None:
    run = await _started_run("run-here")
    await DBOS.cancel_workflow_async("run-here")
    assert preemption.cancelled_here("run-here") == 1
    await _stopped(run, "run-here")


async def test_a_cancellation_elsewhere_stops_the_call_at_the_next_read(
    launched: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preemption, "POLL_SECONDS", 0.2)
    run = await _started_run("run-elsewhere")
    await DBOS.cancel_workflow_async("run-elsewhere")  # no `cancelled_here`: another process's
    await _stopped(run, "run-elsewhere")


async def test_a_call_outside_a_run_is_the_call(launched: None) -> None:
    async def call() -> str:
        return "answered"

    assert await preemption.cancellable(call)() == "answered"
