"""`TaskRecords`: a task followed on a stream keeps its artifacts in its
record (A2A 1.0 §3.2.3: an update with ``append`` adds its parts to the
artifact of the same id, else takes its place), never on someone else's
task; and every state recorded is told to the state listeners, not only
an end. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio

from a2a.types import (
    Artifact,
    Part,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.tasks import EndedTask, Owner, TaskRecords
from gateway.storage.tables import a2a_tasks
from tests.support.waiting import wait_for_async

ALICE = Owner("alice", "https://issuer.example")
BOB = Owner("bob", "https://issuer.example")


def artifact(artifact_id: str, *texts: str, append: bool = False) -> TaskArtifactUpdateEvent:
    parts = [Part(text=t) for t in texts]
    return TaskArtifactUpdateEvent(
        task_id="t1",
        context_id="c1",
        artifact=Artifact(artifact_id=artifact_id, parts=parts),
        append=append,
    )


def texts(task: Task) -> dict[str, list[str]]:
    return {a.artifact_id: [p.text for p in a.parts] for a in task.artifacts}


async def test_artifacts_from_a_stream_are_kept_appended_or_replaced(engine: AsyncEngine) -> None:
    tasks = TaskRecords(engine)
    try:
        started = Task(id="t1", context_id="c1")
        started.status.state = TaskState.TASK_STATE_WORKING
        assert await tasks.observe("agent", ALICE, started)
        assert await tasks.observe("agent", ALICE, artifact("a", "one"))
        assert await tasks.observe("agent", ALICE, artifact("a", "two", append=True))
        assert await tasks.observe("agent", ALICE, artifact("b", "first"))
        assert await tasks.observe("agent", ALICE, artifact("b", "second"))
        done = TaskStatusUpdateEvent(task_id="t1", context_id="c1")
        done.status.state = TaskState.TASK_STATE_COMPLETED
        assert await tasks.observe("agent", ALICE, done)
        kept = await tasks.get("agent", ALICE, "t1")
        assert kept is not None
        assert texts(kept) == {"a": ["one", "two"], "b": ["second"]}
        assert kept.status.state == TaskState.TASK_STATE_COMPLETED
        # Someone else's task: refused, and nothing of theirs added.
        assert not await tasks.observe("agent", BOB, artifact("c", "theirs"))
        assert texts(await tasks.get("agent", ALICE, "t1") or Task()) == texts(kept)
        assert await tasks.get("agent", BOB, "t1") is None
        # An artifact of a task never recorded is dropped, nothing stored.
        lost = TaskArtifactUpdateEvent(task_id="unknown", artifact=Artifact(artifact_id="z"))
        assert await tasks.observe("agent", ALICE, lost)
        assert await tasks.get("agent", ALICE, "unknown") is None
    finally:
        await tasks.aclose()


async def test_every_state_recorded_is_told_and_a_failing_listener_is_not_the_callers(
    engine: AsyncEngine,
) -> None:
    tasks = TaskRecords(engine)
    heard: list[tuple[str, str, str]] = []

    def failing(agent: str, task_id: str, state: str) -> None:
        raise RuntimeError("a listener's bug")

    tasks.state_listeners += [failing, lambda *told: heard.append(told)]
    try:
        task = Task(id="t1", context_id="c1")
        for state in (TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_INPUT_REQUIRED):
            task.status.state = state
            assert await tasks.record("agent", ALICE, task)
        done = TaskStatusUpdateEvent(task_id="t1", context_id="c1")
        done.status.state = TaskState.TASK_STATE_COMPLETED
        assert await tasks.record_status("agent", ALICE, done)
        # Someone else's update is not recorded, so not told.
        assert not await tasks.record_status("agent", BOB, done)
        assert heard == [
            ("agent", "t1", "TASK_STATE_WORKING"),
            ("agent", "t1", "TASK_STATE_INPUT_REQUIRED"),
            ("agent", "t1", "TASK_STATE_COMPLETED"),
        ]
    finally:
        await tasks.aclose()


async def test_updates_of_one_task_at_once_never_undo_each_other(engine: AsyncEngine) -> None:
    """Two streams of one task (the user's own and a flow's follower) write
    its snapshot at once: each update is a read and a write of the whole
    snapshot, so without the row held between them a later write would put
    back what an earlier one changed."""
    tasks = TaskRecords(engine)
    try:
        started = Task(id="t1", context_id="c1")
        started.status.state = TaskState.TASK_STATE_WORKING
        assert await tasks.record("agent", ALICE, started)
        working = TaskStatusUpdateEvent(task_id="t1", context_id="c1")
        working.status.state = TaskState.TASK_STATE_WORKING
        updates = [tasks.observe("agent", ALICE, artifact(f"a{i}", str(i))) for i in range(24)]
        updates += [tasks.observe("agent", ALICE, working) for _ in range(8)]
        assert all(await asyncio.gather(*updates))
        kept = await tasks.get("agent", ALICE, "t1")
        assert kept is not None
        assert texts(kept) == {f"a{i}": [str(i)] for i in range(24)}
    finally:
        await tasks.aclose()


async def test_artifact_updates_held_and_written_together_make_the_same_record(
    engine: AsyncEngine,
) -> None:
    """A stream's later chunks are held (`TaskRecords.held`) and written
    at once: the record is the one writing them one by one makes, and a read
    in between sees each chunk once."""
    tasks = TaskRecords(engine)
    owned = (ALICE.subject, ALICE.issuer)
    try:
        started = Task(id="t1", context_id="c1")
        started.status.state = TaskState.TASK_STATE_WORKING
        assert await tasks.observe("agent", ALICE, started)
        assert await tasks.observe("agent", ALICE, artifact("a", "one"))
        await tasks.held.hold("agent", owned, artifact("a", "two", append=True))
        await tasks.held.hold("agent", owned, artifact("b", "first"))
        assert tasks.held.holds("agent", "t1")
        read = await tasks.get("agent", ALICE, "t1")  # writes what is held first
        assert read is not None and texts(read) == {"a": ["one", "two"], "b": ["first"]}
        assert not tasks.held.holds("agent", "t1")
        await tasks.held.hold("agent", owned, artifact("b", "second"))
        await tasks.held.hold("agent", owned, artifact("a", "three", append=True))
        await tasks.held.flush("agent", "t1")
        kept = await tasks.get("agent", ALICE, "t1")
        assert kept is not None
        assert texts(kept) == {"a": ["one", "two", "three"], "b": ["second"]}
        assert kept.status.state == TaskState.TASK_STATE_WORKING
        # Held and never flushed by hand: written when its time comes.
        await tasks.held.hold("agent", owned, artifact("c", "later"))
        await wait_for_async(lambda: not tasks.held.holds("agent", "t1") or None)
        await tasks.held.flush_all()
        async with engine.connect() as conn:
            row = (await conn.execute(select(a2a_tasks.c.task))).scalar_one()
        assert [a["artifactId"] for a in row["artifacts"]] == ["a", "b", "c"]
    finally:
        await tasks.aclose()


def status(state: TaskState) -> TaskStatusUpdateEvent:
    event = TaskStatusUpdateEvent(task_id="t1", context_id="c1")
    event.status.state = state
    return event


async def test_status_updates_held_with_the_chunks_are_written_and_told_in_order(
    engine: AsyncEngine,
) -> None:
    """A state the task goes on from is held with the chunks around it; the
    end is written at once with them (one record, before anyone hears of
    it), and every state held is told to the listeners in its order."""
    tasks = TaskRecords(engine)
    owned = (ALICE.subject, ALICE.issuer)
    heard: list[tuple[str, str, str]] = []
    ended: list[EndedTask] = []
    tasks.state_listeners.append(lambda *told: heard.append(told))

    async def on_end(task: EndedTask) -> None:
        ended.append(task)

    tasks.ended_listeners.append(on_end)
    try:
        started = Task(id="t1", context_id="c1")
        started.status.state = TaskState.TASK_STATE_SUBMITTED
        assert await tasks.observe("agent", ALICE, started)
        await tasks.held.hold("agent", owned, status(TaskState.TASK_STATE_WORKING))
        await tasks.held.hold("agent", owned, artifact("a", "one"))
        assert tasks.held.holds("agent", "t1")
        async with engine.connect() as conn:
            stored = (await conn.execute(select(a2a_tasks.c.state))).scalar_one()
        assert stored == "TASK_STATE_SUBMITTED"  # held: not written yet
        await tasks.held.hold("agent", owned, status(TaskState.TASK_STATE_COMPLETED))
        assert not tasks.held.holds("agent", "t1")  # an end is written at once
        async with engine.connect() as conn:
            row = (await conn.execute(select(a2a_tasks.c.state, a2a_tasks.c.task))).one()
        assert row.state == "TASK_STATE_COMPLETED"
        assert row.task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert [a["artifactId"] for a in row.task["artifacts"]] == ["a"]
        assert [state for _, _, state in heard] == [
            "TASK_STATE_SUBMITTED",
            "TASK_STATE_WORKING",
            "TASK_STATE_COMPLETED",
        ]
        await tasks.told()
        assert [e.state for e in ended] == ["TASK_STATE_COMPLETED"]
        assert ended[0].snapshot["artifacts"][0]["artifactId"] == "a"
    finally:
        await tasks.aclose()


async def test_a_state_recorded_another_way_lands_after_what_a_stream_held(
    engine: AsyncEngine,
) -> None:
    """A status recorded by another path (a push, a follower) while a stream
    holds an earlier one: what is held is written first, so the record never
    goes back to the held state."""
    tasks = TaskRecords(engine)
    owned = (ALICE.subject, ALICE.issuer)
    try:
        started = Task(id="t1", context_id="c1")
        started.status.state = TaskState.TASK_STATE_SUBMITTED
        assert await tasks.observe("agent", ALICE, started)
        await tasks.held.hold("agent", owned, status(TaskState.TASK_STATE_WORKING))
        assert await tasks.observe("agent", ALICE, status(TaskState.TASK_STATE_COMPLETED))
        await tasks.held.flush_all()
        kept = await tasks.get("agent", ALICE, "t1")
        assert kept is not None and kept.status.state == TaskState.TASK_STATE_COMPLETED
    finally:
        await tasks.aclose()
