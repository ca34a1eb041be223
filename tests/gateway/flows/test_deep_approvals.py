"""What counts as an approval inside an agent's task (`gateway.flows.deep_approvals`)."""

from __future__ import annotations

from typing import Any

import anyio
from a2a.types import Task, TaskState

from gateway.flows.deep_approvals import decided, held_deeper, wait_for_decision
from tests.support.clock import FakeClockLoop

APPROVAL = "apr_" + "0" * 32


def _task(state: TaskState, **metadata: Any) -> Task:
    task = Task(id="t", context_id="c")
    task.status.state = state
    if metadata:
        task.metadata.update(metadata)
    return task


def test_a_flows_checkpoint_is_an_approval_inside() -> None:
    waiting = _task(
        TaskState.TASK_STATE_INPUT_REQUIRED, approval=APPROVAL, chain=["f run r step s"]
    )
    assert held_deeper(waiting) == {"approval": APPROVAL, "chain": ["f run r step s"]}


def test_anything_else_is_not() -> None:
    asking = TaskState.TASK_STATE_INPUT_REQUIRED
    assert held_deeper(_task(asking)) is None  # a question
    assert held_deeper(_task(asking, approval=APPROVAL, question={"round": 1})) is None
    assert held_deeper(_task(TaskState.TASK_STATE_WORKING, approval=APPROVAL)) is None
    # Not an approval id of ours: an agent's own words are not taken for one.
    for odd in ("apr_x", "x" * 400, APPROVAL + "0", "APR_" + "0" * 32):
        assert held_deeper(_task(asking, approval=odd)) is None


def test_a_chain_is_bounded() -> None:
    long = _task(TaskState.TASK_STATE_INPUT_REQUIRED, approval=APPROVAL, chain=["x" * 1000] * 100)
    found = held_deeper(long)
    assert found is not None
    assert len(found["chain"]) == 16 and all(len(link) == 300 for link in found["chain"])


def test_a_decision_wakes_its_waiters_and_only_them() -> None:
    async def play() -> tuple[bool, bool]:
        async with anyio.create_task_group() as group:
            woken: dict[str, bool] = {}

            async def wait(approval: str, seconds: float) -> None:
                woken[approval] = await wait_for_decision(approval, seconds)

            group.start_soon(wait, APPROVAL, 5.0)
            group.start_soon(wait, "apr_other", 0.2)
            await anyio.wait_all_tasks_blocked()  # both waiting
            decided(APPROVAL)
        return woken[APPROVAL], woken["apr_other"]

    # On the test's clock: the other's 0.2 s pass when all else waits, at once.
    assert anyio.run(play, backend_options={"loop_factory": FakeClockLoop}) == (True, False)
