"""A2A messages and tasks as a flow step reads them: the parts a step sends,
what a stream event says of its task, and a finished task's outcome."""

from __future__ import annotations

from typing import Any

from a2a.types import Message, Part, Role, Task, TaskArtifactUpdateEvent, TaskStatusUpdateEvent
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct, Value

from gateway.flows.outcomes import completed
from gateway.http.json_body import check_value


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


class Unsendable(ValueError):
    """A step's message that cannot be built: nothing is sent, the step fails."""


def step_message(
    message_id: str,
    arguments: dict[str, Any] | None,
    text: str | None,
    *,
    skill: str | None = None,
    task_id: str = "",
    context_id: str = "",
) -> Message:
    """The message a step sends, or `Unsendable` saying why it cannot be.

    A step's input is computed (JMESPath's ``sum`` of two large numbers is
    infinite) or copied from an agent's answer, so it may hold what no door
    takes: a number JSON has no spelling for, which protobuf's `Value` holds
    and its JSON encoder then refuses mid-send, leaving the run "working"
    (issue 57). It is held to the doors' rules (`gateway.http.json_body`)
    here, before anything is decided or sent. The depth is not: a step may
    wrap its input deeper than a body's limit, and always could."""
    try:
        if arguments is not None:
            check_value(arguments, max_depth=None)
        message = Message(
            message_id=message_id,
            role=Role.ROLE_USER,
            parts=message_parts(arguments, text),
            task_id=task_id,
            context_id=context_id,
        )
        if skill:
            message.metadata.update({"skill": skill})
    # Building it calls no one: whatever the encoder raises, it cannot be sent.
    except Exception as exc:
        raise Unsendable(f"its message cannot be built: {exc}") from None
    return message


def message_parts(arguments: dict[str, Any] | None, text: str | None) -> list[Part]:
    parts = [Part(text=text)] if text else []
    if arguments is not None:
        struct = Struct()
        struct.update(arguments)
        parts.append(Part(data=Value(struct_value=struct), media_type="application/json"))
    if not parts:
        parts.append(Part(text=""))
    return parts


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
