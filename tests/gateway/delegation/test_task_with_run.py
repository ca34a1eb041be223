"""A gateway-run task and the run that will end it are written in one
transaction (`TaskRecords.record(with_rows=...)`, `TaskRunner.stored`): a
failure between the two -- a database outage, a crash -- leaves neither, never
a task recorded SUBMITTED that no run will finish. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import pytest
from a2a.server.events.event_queue import Event
from a2a.types import Task, TaskState
from sqlalchemy import Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.base import Turn
from gateway.delegation.approval_store import Approvals
from gateway.delegation.approvals import Approval
from gateway.delegation.audit import AuditLog
from gateway.delegation.permits import Caller
from gateway.delegation.pipeline import Grant
from gateway.delegation.runs import RunSpec
from gateway.delegation.task_runner import TaskRunner
from gateway.delegation.tasks import Owner, TaskRecords
from gateway.storage.replicas import ReplicaDirectory
from gateway.storage.tables import a2a_tasks, gateway_runs

ALICE = Owner("alice", "https://issuer.example")
ALICE_CALLS = Caller(ALICE.subject, ALICE.issuer, frozenset(), ("client",), "client")


def runner(engine: AsyncEngine, tasks: TaskRecords) -> TaskRunner:
    async def never(spec: RunSpec, grant: Grant | None) -> AsyncGenerator[Event]:
        raise AssertionError("not run here")
        yield

    replicas = ReplicaDirectory("http://127.0.0.1:1", replica_id="here")
    return TaskRunner(engine, tasks, lambda: never, replicas=replicas)


def spec(task_id: str) -> RunSpec:
    turn = Turn(text="hi", skill=None, task_id=task_id, context_id="ctx-" + task_id)
    return RunSpec("chat", task_id, "ctx-" + task_id, ALICE_CALLS, "trace", turn, streaming=False)


def submitted(task_id: str) -> Task:
    task = Task(id=task_id, context_id="ctx-" + task_id)
    task.status.state = TaskState.TASK_STATE_SUBMITTED
    return task


async def count(engine: AsyncEngine, table: Table, task_id: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.task_id == task_id)
        return int(await conn.scalar(query) or 0)


async def test_a_failing_second_write_leaves_no_task(engine: AsyncEngine) -> None:
    tasks = TaskRecords(engine)

    async def run_row_fails(conn: AsyncConnection) -> None:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        await tasks.record("chat", ALICE, submitted("t-lost"), with_rows=run_row_fails)
    assert await count(engine, a2a_tasks, "t-lost") == 0


async def test_the_task_and_its_run_are_stored_together(engine: AsyncEngine) -> None:
    tasks = TaskRecords(engine)
    runs = runner(engine, tasks)
    assert await tasks.record(
        "chat", ALICE, submitted("t-kept"), with_rows=runs.stored(spec("t-kept"))
    )
    assert await count(engine, a2a_tasks, "t-kept") == 1
    assert await count(engine, gateway_runs, "t-kept") == 1


async def test_a_run_that_cannot_be_stored_takes_its_task_with_it(engine: AsyncEngine) -> None:
    tasks = TaskRecords(engine)
    runs = runner(engine, tasks)
    async with engine.begin() as conn:  # the run's row exists already: its insert fails
        await runs.stored(spec("t-twice"))(conn)
    with pytest.raises(IntegrityError):
        await tasks.record(
            "chat", ALICE, submitted("t-twice"), with_rows=runs.stored(spec("t-twice"))
        )
    assert await count(engine, a2a_tasks, "t-twice") == 0


async def pending(
    store: Approvals, approval_id: str, task_id: str, conn: AsyncConnection | None = None
) -> None:
    """A pending approval of ALICE's call to chat's `work`, for ``task_id``."""
    await store.hold(
        approval_id,
        kind="a2a",
        caller=ALICE_CALLS,
        target="chat",
        action_kind="skill",
        action="work",
        request={},
        reasons=["policy requires human approval"],
        trace_id="trace",
        task_id=task_id,
        conn=conn,
    )


async def test_a_held_calls_approval_is_stored_with_its_task_or_neither(
    engine: AsyncEngine,
) -> None:
    """A call held for an approval (`gateway.agents.approvals`): its task and its
    approval in one transaction, so no task waits for an approval that is not
    there."""
    tasks = TaskRecords(engine)
    store = Approvals(engine, AuditLog(engine))

    def held(approval_id: str, task_id: str) -> Callable[[AsyncConnection], Awaitable[None]]:
        async def hold(conn: AsyncConnection) -> None:
            await pending(store, approval_id, task_id, conn)

        return hold

    assert await tasks.record("chat", ALICE, submitted("t-held"), with_rows=held("ap-1", "t-held"))
    assert (await store.get("ap-1")).task_id == "t-held"
    # The same approval id again: its insert fails, and the task goes with it.
    with pytest.raises(IntegrityError):
        await tasks.record("chat", ALICE, submitted("t-orphan"), with_rows=held("ap-1", "t-orphan"))
    assert await count(engine, a2a_tasks, "t-orphan") == 0
    await store.aclose()


async def test_an_approval_is_decided_with_its_run_or_not_at_all(engine: AsyncEngine) -> None:
    """`Approvals.decide(then=...)`: the approved call's run is stored in the
    decision's transaction; a run that cannot be stored leaves it pending."""
    tasks = TaskRecords(engine)
    store = Approvals(engine, AuditLog(engine))
    runs = runner(engine, tasks)
    for approval_id, task_id in (("ap-ok", "t-ok"), ("ap-bad", "t-bad")):
        await pending(store, approval_id, task_id)

    async def run_row(approval: Approval, conn: AsyncConnection) -> None:
        assert approval.task_id is not None and approval.state == "approved"
        await runs.stored(spec(approval.task_id))(conn)

    decided = await store.decide("ap-ok", "approved", "admin", None, then=run_row)
    assert decided.state == "approved"
    assert await count(engine, gateway_runs, "t-ok") == 1

    async def run_row_fails(approval: Approval, conn: AsyncConnection) -> None:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        await store.decide("ap-bad", "approved", "admin", None, then=run_row_fails)
    assert (await store.get("ap-bad")).state == "pending"
    await store.aclose()
