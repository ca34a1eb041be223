"""`PendingArtifacts`: a stream's chunks of its own recorded task are kept
and written together, in the order sent: when enough wait, when the oldest
has waited long enough, and when asked (before any other event, at the
stream's close); a chunk of any other task is not kept."""

from __future__ import annotations

import pytest
from a2a.types import Artifact, Part, Task, TaskArtifactUpdateEvent, TaskStatusUpdateEvent

from gateway.agents import stream_records
from gateway.agents.stream_records import Followed, PendingArtifacts


def chunk(task_id: str, text: str) -> TaskArtifactUpdateEvent:
    artifact = Artifact(artifact_id="answer", parts=[Part(text=text)])
    return TaskArtifactUpdateEvent(task_id=task_id, artifact=artifact, append=True)


def texts(batch: list[TaskArtifactUpdateEvent]) -> list[str]:
    return [e.artifact.parts[0].text for e in batch]


@pytest.fixture
def written() -> list[list[TaskArtifactUpdateEvent]]:
    return []


@pytest.fixture
def pending(written: list[list[TaskArtifactUpdateEvent]]) -> PendingArtifacts:
    async def write(events: list[TaskArtifactUpdateEvent]) -> None:
        written.append(events)

    return PendingArtifacts(write)


def test_only_chunks_of_the_task_this_stream_recorded_are_kept(pending: PendingArtifacts) -> None:
    followed = Followed()
    followed.see(chunk("t1", "early"))
    assert not pending.takes(chunk("t1", "early"), followed)  # not recorded as the caller's yet
    task = Task(id="t1")
    followed.see(task)
    followed.recorded(task)
    assert pending.takes(chunk("t1", "x"), followed)
    assert not pending.takes(chunk("t2", "x"), followed)
    assert not pending.takes(TaskStatusUpdateEvent(task_id="t1"), followed)
    update = TaskStatusUpdateEvent(task_id="t3")
    followed.see(update)
    followed.recorded(update)
    assert not pending.takes(chunk("t1", "x"), followed)
    assert pending.takes(chunk("t3", "x"), followed)


async def test_chunks_are_written_in_order_by_count_and_when_asked(
    pending: PendingArtifacts, written: list[list[TaskArtifactUpdateEvent]]
) -> None:
    count = stream_records.FLUSH_COUNT
    for i in range(count + 3):
        await pending.add(chunk("t1", str(i)))
    assert [texts(batch) for batch in written] == [[str(i) for i in range(count)]]
    await pending.flush()
    await pending.flush()  # nothing left: no empty write
    assert [texts(batch) for batch in written][1:] == [[str(count), str(count + 1), str(count + 2)]]


async def test_the_oldest_chunks_wait_at_most_until_the_next_after_the_interval(
    written: list[list[TaskArtifactUpdateEvent]],
) -> None:
    now = [100.0]

    async def write(events: list[TaskArtifactUpdateEvent]) -> None:
        written.append(events)

    pending = PendingArtifacts(write, clock=lambda: now[0])
    await pending.add(chunk("t1", "a"))
    now[0] += stream_records.FLUSH_SECONDS / 2
    await pending.add(chunk("t1", "b"))
    assert written == []
    now[0] += stream_records.FLUSH_SECONDS / 2
    await pending.add(chunk("t1", "c"))
    assert [texts(batch) for batch in written] == [["a", "b", "c"]]
    await pending.add(chunk("t1", "d"))  # a new batch: its own clock
    assert len(written) == 1
