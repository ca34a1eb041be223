"""What a relayed A2A stream says about its task, and the artifact chunks it
writes into the task's record a few at a time.

An agent that streams its answer sends one `TaskArtifactUpdateEvent` per
chunk (A2A 1.0 §3.2.3, ``append``): a language model's answer is hundreds.
Written one by one, each chunk was a transaction that read and rewrote the
whole snapshot -- a cost per event, growing with the answer. Chunks of the
stream's own task (recorded as this caller's by an earlier event of the same
stream) are kept here and written together: before the stream's next
non-chunk event (so a status, and the task's end, is recorded after its
artifacts, in the order sent), when `FLUSH_COUNT` are waiting, when the
oldest has waited `FLUSH_SECONDS` by the time the next arrives, and when the
stream closes. A `GetTask` during a stream sees its artifacts so late at
most, or until the next event; a gateway that dies mid-stream loses the
chunks not yet written, and the task's reconciliation
(`gateway.agents.reconcile`) reads the whole task from its agent.
A chunk for any other task is recorded on its own, as before: the ownership
check that refuses an update for a task that is not the caller's stays
before the event is relayed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from a2a.server.events.event_queue import Event
from a2a.types import Task, TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent

FLUSH_COUNT = 64
FLUSH_SECONDS = 0.25

# A task in these states goes on without a word from the caller; a stream may
# end in any other (an end, or input or auth required) and lose nothing.
RUNNING = frozenset({TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING})


class Followed:
    """What a relayed stream said about its task."""

    def __init__(self) -> None:
        self.task_id = ""
        self.state = TaskState.TASK_STATE_UNSPECIFIED
        self.recorded_id = ""  # a task this stream recorded as the caller's

    def see(self, event: Event) -> None:
        if isinstance(event, Task):
            self.task_id, self.state = event.id, event.status.state
        elif isinstance(event, TaskStatusUpdateEvent):
            self.task_id, self.state = event.task_id, event.status.state
        elif isinstance(event, TaskArtifactUpdateEvent):
            self.task_id = self.task_id or event.task_id

    def recorded(self, event: Event) -> None:
        """``event`` was recorded for the caller (its task is theirs)."""
        if isinstance(event, Task):
            self.recorded_id = event.id
        elif isinstance(event, TaskStatusUpdateEvent):
            self.recorded_id = event.task_id

    @property
    def running(self) -> bool:
        return bool(self.task_id) and self.state in RUNNING


class PendingArtifacts:
    """Artifact chunks of the stream's own task, not written yet."""

    def __init__(
        self,
        write: Callable[[list[TaskArtifactUpdateEvent]], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``write``: records the chunks of one task, in order, with one write
        (raises if the task is not the caller's)."""
        self._write = write
        self._clock = clock
        self._events: list[TaskArtifactUpdateEvent] = []
        self._since = 0.0

    def takes(self, event: Event, followed: Followed) -> bool:
        """Whether ``event`` is a chunk this keeps (see the module's docstring)."""
        return (
            isinstance(event, TaskArtifactUpdateEvent)
            and bool(followed.recorded_id)
            and event.task_id == followed.recorded_id
        )

    async def add(self, event: TaskArtifactUpdateEvent) -> None:
        now = self._clock()
        if not self._events:
            self._since = now
        self._events.append(event)
        if len(self._events) >= FLUSH_COUNT or now - self._since >= FLUSH_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        events, self._events = self._events, []
        if events:
            await self._write(events)
