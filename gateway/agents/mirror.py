"""The gateway task of an approved A2A call, following what the agent says
about its own task (`gateway.agents.approvals`)."""

from __future__ import annotations

import uuid
from typing import Any

from a2a.server.events.event_queue import Event
from a2a.types import (
    Artifact,
    Message,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from gateway.delegation.runs import ENDS, status_message

UPSTREAM_META = "upstreamTaskId"


def upstream_task_of(task: Task) -> str | None:
    """The agent's own task behind a gateway task, once the agent named it."""
    value = task.metadata.fields.get(UPSTREAM_META)
    return value.string_value if value is not None and value.string_value else None


class Mirror:
    """The gateway task, following what the upstream says about its own."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.upstream_id = ""
        self.ended = False

    def _status(self, status: TaskStatus) -> None:
        self.task.status.CopyFrom(status)
        if status.HasField("message"):
            self.task.status.message.task_id = self.task.id
            self.task.status.message.context_id = self.task.context_id
        self.ended = status.state in ENDS

    def _artifact(self, artifact: Artifact, append: bool) -> None:
        for known in self.task.artifacts:
            if known.artifact_id == artifact.artifact_id:
                if append:
                    known.parts.extend(artifact.parts)
                else:
                    known.CopyFrom(artifact)
                return
        self.task.artifacts.append(artifact)

    def take(self, event: Any) -> Event | None:
        """Absorb an upstream event; returns the update to pass on, if any."""
        if isinstance(event, Message):
            reply = Artifact(artifact_id=str(uuid.uuid4()), name="reply", parts=event.parts)
            self._artifact(reply, False)
            self._status(TaskStatus(state=TaskState.TASK_STATE_COMPLETED))
            return None
        if isinstance(event, Task):
            self.upstream_id = event.id
            for artifact in event.artifacts:
                self._artifact(artifact, False)
            self._status(event.status)
            self.task.metadata.update({UPSTREAM_META: event.id})
            return None if self.ended else self._update()
        if isinstance(event, TaskStatusUpdateEvent):
            self.upstream_id = self.upstream_id or event.task_id
            self._status(event.status)
            return None if self.ended else self._update()
        if isinstance(event, TaskArtifactUpdateEvent):
            self._artifact(event.artifact, event.append)
            update = TaskArtifactUpdateEvent(
                task_id=self.task.id,
                context_id=self.task.context_id,
                append=event.append,
                last_chunk=event.last_chunk,
            )
            update.artifact.CopyFrom(event.artifact)
            return update
        return None

    def _update(self) -> TaskStatusUpdateEvent:
        update = TaskStatusUpdateEvent(task_id=self.task.id, context_id=self.task.context_id)
        update.status.CopyFrom(self.task.status)
        return update

    def fail(self, reason: str) -> None:
        self.task.status.Clear()
        self.task.status.state = TaskState.TASK_STATE_FAILED
        self.task.status.message.CopyFrom(
            status_message(self.task.id, self.task.context_id, reason)
        )
        self.ended = True

    def final(self) -> Task:
        if not self.ended:
            self.fail("the agent ended without a final answer")
        return self.task
