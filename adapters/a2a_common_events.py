"""The common A2A 1.0 stream events, read without protobuf's JSON parser.

Most events an agent streams are a handful of shapes: the task (its id,
context, state and text artifacts), a status update with a bare state, an
artifact chunk of text parts. `google.protobuf.json_format.ParseDict` reads
each field of each by reflection, which costs more than the rest of an
event's way through the gateway; these shapes are built here directly.

Only a document whose every member is one of these shapes' own, under its
JSON name and of the type ProtoJSON requires, is read here, and what is
built is what `ParseDict` builds from it. Anything else -- another member,
a snake_case name, a `null`, a state by number or unknown, a status
message, a part that is not text, a timestamp protobuf refuses -- returns
None, and the caller parses it the SDK's way (with its errors and repairs).
"""

from __future__ import annotations

import json
from typing import Any

from a2a.types import (
    Artifact,
    Part,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from adapters.a2a_plain_parse import unique_members


class _Uncommon(Exception):
    """Not one of the common shapes: parsed the SDK's way instead."""


_STATES = {value.name: value.number for value in TaskState.DESCRIPTOR.values}
_PART = frozenset({"text", "mediaType", "filename"})
_ARTIFACT = frozenset({"artifactId", "name", "description", "parts"})
_STATUS = frozenset({"state", "timestamp"})
_TASK = frozenset({"id", "contextId", "status", "artifacts"})
_STATUS_UPDATE = frozenset({"taskId", "contextId", "status"})
_ARTIFACT_UPDATE = frozenset({"taskId", "contextId", "artifact", "append", "lastChunk"})


def common_event(data: dict[str, Any] | str | bytes) -> StreamResponse | None:
    """``data`` (a `StreamResponse` in ProtoJSON) read directly when it is a
    common shape, else None."""
    try:
        document = _loaded(data) if isinstance(data, str | bytes) else data
        if not isinstance(document, dict) or len(document) != 1:
            return None
        [(member, value)] = document.items()
        if member == "statusUpdate":
            return StreamResponse(status_update=_status_update(value))
        if member == "artifactUpdate":
            return StreamResponse(artifact_update=_artifact_update(value))
        if member == "task":
            return StreamResponse(task=_task(value))
    except _Uncommon:
        pass
    return None


def _loaded(data: str | bytes) -> Any:
    try:
        return json.loads(data, object_pairs_hook=unique_members)
    except (ValueError, RecursionError):  # (not UTF-8, a name twice, too deep): protobuf's own
        raise _Uncommon from None


def _fields(value: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or not value.keys() <= allowed:
        raise _Uncommon
    return value


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name, "")
    if not isinstance(value, str):
        raise _Uncommon
    return value


def _flag(document: dict[str, Any], name: str) -> bool:
    value = document.get(name, False)
    if not isinstance(value, bool):
        raise _Uncommon
    return value


def _status(value: Any) -> TaskStatus:
    document = _fields(value, _STATUS)
    name = document.get("state", "TASK_STATE_UNSPECIFIED")
    state = _STATES.get(name) if isinstance(name, str) else None
    if state is None:
        raise _Uncommon
    status = TaskStatus(state=state)
    if "timestamp" in document:
        try:
            status.timestamp.FromJsonString(_text(document, "timestamp"))
        except ValueError:
            raise _Uncommon from None
    return status


def _parts(value: Any) -> list[Part]:
    if not isinstance(value, list):
        raise _Uncommon
    parts = []
    for item in value:
        part = _fields(item, _PART)
        if "text" not in part:
            raise _Uncommon
        parts.append(
            Part(
                text=_text(part, "text"),
                media_type=_text(part, "mediaType"),
                filename=_text(part, "filename"),
            )
        )
    return parts


def _artifact(value: Any) -> Artifact:
    document = _fields(value, _ARTIFACT)
    return Artifact(
        artifact_id=_text(document, "artifactId"),
        name=_text(document, "name"),
        description=_text(document, "description"),
        parts=_parts(document.get("parts", [])),
    )


def _task(value: Any) -> Task:
    document = _fields(value, _TASK)
    artifacts = document.get("artifacts", [])
    if not isinstance(artifacts, list):
        raise _Uncommon
    task = Task(
        id=_text(document, "id"),
        context_id=_text(document, "contextId"),
        artifacts=[_artifact(item) for item in artifacts],
    )
    if "status" in document:
        task.status.SetInParent()  # present, as the parser has it, even when empty
        task.status.CopyFrom(_status(document["status"]))
    return task


def _status_update(value: Any) -> TaskStatusUpdateEvent:
    document = _fields(value, _STATUS_UPDATE)
    event = TaskStatusUpdateEvent(
        task_id=_text(document, "taskId"), context_id=_text(document, "contextId")
    )
    if "status" in document:
        event.status.SetInParent()
        event.status.CopyFrom(_status(document["status"]))
    return event


def _artifact_update(value: Any) -> TaskArtifactUpdateEvent:
    document = _fields(value, _ARTIFACT_UPDATE)
    event = TaskArtifactUpdateEvent(
        task_id=_text(document, "taskId"),
        context_id=_text(document, "contextId"),
        append=_flag(document, "append"),
        last_chunk=_flag(document, "lastChunk"),
    )
    if "artifact" in document:
        event.artifact.SetInParent()
        event.artifact.CopyFrom(_artifact(document["artifact"]))
    return event
