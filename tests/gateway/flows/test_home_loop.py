"""A workflow DBOS takes from its queue runs its body on the gateway's loop
(`gateway.flows.home_loop`), in the workflow's DBOS context. A real DBOS,
launched off the loop on an SQLite file, as the flow engine launches it; a
queued workflow is started by DBOS's queue thread, outside any loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dbos import DBOS, SetWorkflowID

from gateway.flows import home_loop
from tests.support.dbos_launch import launched_dbos

T = TypeVar("T")


async def _where() -> tuple[int, str | None]:
    return id(asyncio.get_running_loop()), DBOS.workflow_id


@DBOS.workflow(name="home_loop_test_at_home")
@home_loop.at_home
async def _at_home() -> tuple[int, str | None]:
    step: tuple[int, str | None] = await DBOS.run_step_async({"name": "where"}, _where)
    return step


@DBOS.workflow(name="home_loop_test_in_place")
async def _in_place() -> tuple[int, str | None]:
    return await _where()


@DBOS.workflow(name="home_loop_test_failing")
@home_loop.at_home
async def _failing() -> None:
    raise ValueError("failed at home")


@pytest.fixture
async def launched(tmp_path: Path) -> AsyncIterator[None]:
    home_loop.settle()
    try:
        async with launched_dbos(tmp_path, "home-loop-test"):
            yield
    finally:
        home_loop.leave()


async def _queued(workflow: Callable[[], Coroutine[Any, Any, T]], workflow_id: str) -> T:
    queue = await DBOS.register_queue_async(f"home-loop-{workflow_id}")
    with SetWorkflowID(workflow_id):
        handle = await queue.enqueue_async(workflow)
    return await asyncio.wait_for(handle.get_result(), 30)


async def test_a_queued_workflow_runs_at_home_in_its_context(launched: None) -> None:
    ours = id(asyncio.get_running_loop())
    loop, workflow_id = await _queued(_at_home, "w-home")
    assert (loop, workflow_id) == (ours, "w-home")
    steps = await DBOS.list_workflow_steps_async("w-home")
    assert [step["function_name"] for step in steps] == ["where"]


async def test_without_it_dbos_runs_a_queued_workflow_elsewhere(launched: None) -> None:
    # Why `at_home` is needed: launched off the loop, DBOS keeps a loop of
    # its own for what its queue starts. If an upgrade changes that, this fails.
    loop, _ = await _queued(_in_place, "w-elsewhere")
    assert loop != id(asyncio.get_running_loop())


async def test_an_error_at_home_is_the_workflows(launched: None) -> None:
    with pytest.raises(ValueError, match="failed at home"):
        await _queued(_failing, "w-failing")
    status = await DBOS.get_workflow_status_async("w-failing")
    assert status is not None and status.status == "ERROR"
