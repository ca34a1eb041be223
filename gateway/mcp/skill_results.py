"""An agent's answer to a skill called as an MCP tool (`gateway.mcp.agent_tools`):
the A2A events of its task (or its one message) taken in as they come, each
status update a progress note, then made one tool result -- the artifacts'
parts as content, structured data and the task's state beside them; a task
waiting for input or authorization says so and how to go on."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import mcp_types as types
from a2a.types import (
    Artifact,
    Message,
    Part,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from google.protobuf.json_format import MessageToDict

_WAITING = {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED}
_FAILED = {
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_REJECTED,
    TaskState.TASK_STATE_CANCELED,
}


class Outcome:
    """What a stream of A2A events amounts to, for one MCP result."""

    def __init__(self) -> None:
        self.task: Task | None = None
        self.message: Message | None = None
        self.artifacts: dict[str, Artifact] = {}
        self.steps = 0

    def take(self, event: Any) -> str | None:
        """Absorb an event; returns a progress note for a status update."""
        if isinstance(event, Task):
            self.task = event
            for artifact in event.artifacts:
                self.artifacts[artifact.artifact_id] = artifact
        elif isinstance(event, Message):
            self.message = event
        elif isinstance(event, TaskStatusUpdateEvent):
            if self.task is None:
                self.task = Task(id=event.task_id, context_id=event.context_id)
            self.task.status.CopyFrom(event.status)
            if event.HasField("metadata"):
                # The status's own: an earlier question's is not this one's.
                self.task.metadata.Clear()
                self.task.metadata.update(MessageToDict(event.metadata))
            text = _text(event.status.message.parts)
            return f"{TaskState.Name(event.status.state)}: {text}".rstrip(": ")
        elif isinstance(event, TaskArtifactUpdateEvent):
            known = self.artifacts.get(event.artifact.artifact_id)
            if known is not None and event.append:
                for part in event.artifact.parts:
                    # Streamed text arrives in fragments: one text, not many.
                    if known.parts and known.parts[-1].HasField("text") and part.HasField("text"):
                        known.parts[-1].text += part.text
                    else:
                        known.parts.append(part)
            else:
                self.artifacts[event.artifact.artifact_id] = event.artifact
        return None

    def result(self) -> types.CallToolResult:
        if self.message is not None and self.task is None:
            return _result(list(self.message.parts), is_error=False, meta={})
        if self.task is None:
            return _result([Part(text="the agent answered nothing")], is_error=True, meta={})
        task = self.task
        state = task.status.state
        parts = [part for artifact in self.artifacts.values() for part in artifact.parts]
        meta = {"taskId": task.id, "contextId": task.context_id, "state": TaskState.Name(state)}
        if state in _WAITING:
            # The agent's words, also on their own (`gateway.mcp.agent_questions`);
            # a flow's run waiting at a checkpoint asks an approver, not its user.
            said = MessageToDict(task.metadata) if task.HasField("metadata") else {}
            if "approval" in said and "question" not in said:
                meta["approval"] = str(said["approval"])
            else:
                meta["question"] = _text(task.status.message.parts)
                asked = said.get("question")
                if isinstance(asked, dict) and isinstance(asked.get("round"), int | float):
                    meta["questionRound"] = str(int(asked["round"]))
            asked = list(task.status.message.parts) or [Part(text="the agent needs more input")]
            verb = "more input" if state == TaskState.TASK_STATE_INPUT_REQUIRED else "authorization"
            asked.append(Part(text=f"(task {task.id} waits for {verb}: call again with taskId)"))
            return _result(parts + asked, is_error=False, meta=meta)
        if state in _FAILED:
            reason = list(task.status.message.parts) or [Part(text=TaskState.Name(state))]
            return _result(reason, is_error=True, meta=meta)
        return _result(parts + list(task.status.message.parts), is_error=False, meta=meta)


def _text(parts: Any) -> str:
    return " ".join(p.text for p in parts if p.HasField("text"))


def _result(parts: list[Part], *, is_error: bool, meta: dict[str, str]) -> types.CallToolResult:
    content: list[Any] = []
    structured: dict[str, Any] = dict(meta)
    for part in parts:
        if part.HasField("text"):
            content.append(types.TextContent(type="text", text=part.text))
        elif part.HasField("data"):
            value = MessageToDict(part.data)
            if isinstance(value, dict):
                structured.update(value)
            content.append(types.TextContent(type="text", text=json.dumps(value)))
        elif part.HasField("url"):
            content.append(
                types.ResourceLink(
                    type="resource_link",
                    uri=part.url,
                    name=part.filename or part.url,
                    mime_type=part.media_type or None,
                )
            )
        elif part.HasField("raw"):
            blob = types.BlobResourceContents(
                uri=f"a2a:part/{uuid.uuid4()}",
                blob=base64.b64encode(part.raw).decode(),
                mime_type=part.media_type or "application/octet-stream",
            )
            content.append(types.EmbeddedResource(type="resource", resource=blob))
    return types.CallToolResult(
        content=content, structured_content=structured or None, is_error=is_error
    )
