"""A2A messages and tasks as a flow step reads them: what a stream event
says of its task, and a finished task's outcome. (What a step sends is plain
data, `gateway.agents.exchange.AgentMessage`.)"""

from __future__ import annotations

from typing import Any

from a2a.types import Part, Task, TaskArtifactUpdateEvent, TaskStatusUpdateEvent
from google.protobuf.json_format import MessageToDict

from gateway.flows.outcomes import completed


def task_id_of(event: Any) -> str:
    return str(event.id if isinstance(event, Task) else event.task_id)


def apply_event(task: Task, event: Any) -> None:
    """What a stream event says of its task (A2A 1.0 section 3.2: a Task
    snapshot, a status update, or an artifact update -- appended to the
    artifact of the same id when ``append`` is set)."""
    if isinstance(event, Task):
        task.CopyFrom(event)
    elif isinstance(event, TaskStatusUpdateEvent):
        task.status.CopyFrom(event.status)
        if event.metadata:
            task.metadata.update(MessageToDict(event.metadata))
    elif isinstance(event, TaskArtifactUpdateEvent):
        same = next(
            (a for a in task.artifacts if a.artifact_id == event.artifact.artifact_id), None
        )
        if same is not None and event.append:
            same.parts.extend(event.artifact.parts)
        elif same is not None:
            same.CopyFrom(event.artifact)
        else:
            task.artifacts.append(event.artifact)


def text_of(parts: list[Part]) -> str:
    return " ".join(p.text for p in parts if p.HasField("text"))


def outcome_of_parts(parts: list[Part]) -> dict[str, Any]:
    """Data parts (merged) as the output, else the text; the text always."""
    data: dict[str, Any] | None = None
    for part in parts:
        if part.HasField("data"):
            value = MessageToDict(part.data)
            if isinstance(value, dict):
                data = {**(data or {}), **value}
            elif data is None:
                data = {"value": value}
    text = text_of(parts)
    return completed(data if data is not None else text, text)
