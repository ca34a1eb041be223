"""`TaskRecords.record`, one statement: a new task is stored with its owner,
skill and caller; its owner's next snapshot updates it and keeps those; a
snapshot of someone else's task changes nothing of it; an end clears the
reconcile columns. The same with rows written beside it (``with_rows``),
which are written only when the task is. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from a2a.types import Task, TaskState
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.delegation.permits import Caller
from gateway.delegation.tasks import Owner, TaskRecords
from gateway.storage.tables import a2a_tasks

ALICE = Owner("alice", "https://issuer.example")
BOB = Owner("bob", "https://issuer.example")
ALICE_ELSEWHERE = Owner("alice", "https://other-issuer.example")


def through(client_id: str) -> Owner:
    """Alice, calling through ``client_id`` (kept with the task the first time)."""
    caller = Caller(ALICE.subject, ALICE.issuer, frozenset({"s"}), (client_id,), client_id)
    return Owner(ALICE.subject, ALICE.issuer, caller)


def snapshot(state: TaskState, task_id: str = "t1") -> Task:
    task = Task(id=task_id, context_id="c1")
    task.status.state = state
    return task


async def row(engine: AsyncEngine, task_id: str = "t1") -> dict[str, Any]:
    async with engine.connect() as conn:
        found = (
            (await conn.execute(select(a2a_tasks).where(a2a_tasks.c.task_id == task_id)))
            .mappings()
            .one()
        )
    return dict(found)


async def test_a_task_is_stored_then_updated_by_its_owner_only(engine: AsyncEngine) -> None:
    tasks = TaskRecords(engine)
    try:
        working = snapshot(TaskState.TASK_STATE_WORKING)
        assert await tasks.record("agent", through("app-1"), working, "quote")
        first = await row(engine)
        assert (first["owner_subject"], first["owner_issuer"]) == ("alice", ALICE.issuer)
        assert first["skill"] == "quote" and first["state"] == "TASK_STATE_WORKING"
        assert first["owner_caller"]["client_id"] == "app-1"

        # The owner's next snapshot: the state moves, what the first said stays.
        done = snapshot(TaskState.TASK_STATE_COMPLETED)
        assert await tasks.record("agent", through("app-2"), done, "another skill")
        second = await row(engine)
        assert second["state"] == "TASK_STATE_COMPLETED"
        assert second["skill"] == "quote"
        assert second["owner_caller"] == first["owner_caller"]
        assert second["created_at"] == first["created_at"]
        assert second["updated_at"] >= first["updated_at"]

        # Someone else -- another subject, or the same subject at another
        # issuer -- taking the id: refused, nothing of the record changed.
        for other in (BOB, ALICE_ELSEWHERE):
            assert not await tasks.record("agent", other, snapshot(TaskState.TASK_STATE_FAILED))
            assert await row(engine) == second
            assert await tasks.get("agent", other, "t1") is None
    finally:
        await tasks.aclose()


async def test_an_end_clears_the_reconcile_columns_and_a_passing_state_keeps_them(
    engine: AsyncEngine,
) -> None:
    tasks = TaskRecords(engine)
    try:
        assert await tasks.record("agent", ALICE, snapshot(TaskState.TASK_STATE_WORKING))
        marked = {
            "reconcile_at": datetime(2026, 1, 1, tzinfo=UTC),
            "reconcile_since": datetime(2026, 1, 1, tzinfo=UTC),
            "reconcile_attempts": 2,
            "reconcile_caller": {"subject": "alice"},
        }
        async with engine.begin() as conn:
            await conn.execute(update(a2a_tasks).values(**marked))
        assert await tasks.record("agent", ALICE, snapshot(TaskState.TASK_STATE_WORKING))
        assert (await row(engine))["reconcile_attempts"] == 2
        assert await tasks.record("agent", ALICE, snapshot(TaskState.TASK_STATE_COMPLETED))
        ended = await row(engine)
        assert ended["reconcile_at"] is ended["reconcile_since"] is None
        assert ended["reconcile_attempts"] is ended["reconcile_caller"] is None
    finally:
        await tasks.aclose()


async def test_two_owners_racing_for_a_new_id_leave_it_to_one(engine: AsyncEngine) -> None:
    tasks = TaskRecords(engine)
    try:
        stored = await asyncio.gather(
            *(
                tasks.record("agent", owner, snapshot(TaskState.TASK_STATE_WORKING, "raced"))
                for owner in (ALICE, BOB) * 4
            )
        )
        owner = (await row(engine, "raced"))["owner_subject"]
        mine = ALICE if owner == "alice" else BOB
        assert [s for s, o in zip(stored, (ALICE, BOB) * 4, strict=True) if o == mine] == [True] * 4
        assert not any(s for s, o in zip(stored, (ALICE, BOB) * 4, strict=True) if o != mine)
    finally:
        await tasks.aclose()


async def test_with_rows_the_same_statement_writes_them_only_for_the_owner(
    engine: AsyncEngine,
) -> None:
    tasks = TaskRecords(engine)
    written: list[str] = []

    def writing(who: str) -> Callable[[AsyncConnection], Awaitable[None]]:
        async def with_rows(_conn: AsyncConnection) -> None:
            written.append(who)

        return with_rows

    try:
        working = snapshot(TaskState.TASK_STATE_WORKING)
        assert await tasks.record(
            "agent", through("app-1"), working, "quote", with_rows=writing("a")
        )
        first = await row(engine)
        done = snapshot(TaskState.TASK_STATE_COMPLETED)
        assert await tasks.record("agent", ALICE, done, "other", with_rows=writing("a again"))
        second = await row(engine)
        assert second["state"] == "TASK_STATE_COMPLETED"
        assert (second["skill"], second["owner_caller"]) == (first["skill"], first["owner_caller"])
        # Someone else's: no row changed, and nothing more written with it.
        failed = snapshot(TaskState.TASK_STATE_FAILED)
        assert not await tasks.record("agent", BOB, failed, with_rows=writing("bob"))
        assert await row(engine) == second
        assert written == ["a", "a again"]
    finally:
        await tasks.aclose()
