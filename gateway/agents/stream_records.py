"""What a relayed A2A stream says about its task: the task it follows and its
last state (`gateway.agents.calls`: a stream that ends while its task still
runs has the task reconciled), and the states in which a task goes on
without a word from the caller."""

from __future__ import annotations

from a2a.server.events.event_queue import Event
from a2a.types import Task, TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent

# A task in these states goes on without a word from the caller; a stream may
# end in any other (an end, or input or auth required) and lose nothing.
RUNNING = frozenset({TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING})


class Followed:
    """What a relayed stream said about its task."""

    def __init__(self) -> None:
        self.task_id = ""
        self.state = TaskState.TASK_STATE_UNSPECIFIED

    def see(self, event: Event) -> None:
        if isinstance(event, Task):
            self.task_id, self.state = event.id, event.status.state
        elif isinstance(event, TaskStatusUpdateEvent):
            self.task_id, self.state = event.task_id, event.status.state
        elif isinstance(event, TaskArtifactUpdateEvent):
            self.task_id = self.task_id or event.task_id

    @property
    def running(self) -> bool:
        return bool(self.task_id) and self.state in RUNNING
