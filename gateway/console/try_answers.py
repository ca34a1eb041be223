"""An answer as the playground (`gateway.console.playground`) draws it: an
agent's message or task, a tool's result, each as parts -- text, pretty
JSON, links, files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from a2a.types import Message, Task, TaskState
from google.protobuf.json_format import MessageToDict


@dataclass
class Shown:
    """An answer as the page draws it: parts (text, pretty JSON, links, files)."""

    kind: str  # "message", "task", "tool"
    parts: list[dict[str, str]] = field(default_factory=list)
    artifacts: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)
    task_id: str = ""
    context_id: str = ""
    state: str = ""
    status: list[dict[str, str]] = field(default_factory=list)
    approval: str = ""  # the call is held: the approval (or deferral) that holds it
    connect_url: str = ""
    is_error: bool = False
    structured: str = ""

    @property
    def waiting_for(self) -> str:
        """What a held call waits for, as its task says it."""
        if self.connect_url:
            return "you to connect your account"
        if self.state == "TASK_STATE_SUBMITTED":
            return "a coordination rule (deferred)"
        return "approval"


def shown_message(message: Message) -> Shown:
    return Shown("message", parts=_parts(message.parts))


def shown_task(task: Task, held: bool) -> Shown:
    """A task; ``held``: the gateway's own task for a call it holds, whose
    metadata names the approval (or the account to connect) -- read only
    then: an upstream's metadata never speaks for the gateway."""
    meta = MessageToDict(task.metadata) if held else {}
    return Shown(
        "task",
        task_id=task.id,
        context_id=task.context_id,
        state=TaskState.Name(task.status.state),
        status=_parts(task.status.message.parts),
        artifacts=[(a.name or a.artifact_id, _parts(a.parts)) for a in task.artifacts],
        approval=str(meta.get("approval") or ""),
        connect_url=str(meta.get("connect_url") or ""),
    )


def _parts(parts: Any) -> list[dict[str, str]]:
    shown = []
    for part in parts:
        if part.HasField("text"):
            shown.append({"kind": "text", "text": part.text})
        elif part.HasField("data"):
            shown.append({"kind": "data", "text": pretty(MessageToDict(part.data))})
        elif part.HasField("url"):
            shown.append({"kind": "url", "text": part.url, "name": part.filename or part.url})
        elif part.HasField("raw"):
            name = part.filename or "file"
            said = f"{name} ({part.media_type or 'bytes'}, {len(part.raw)} bytes)"
            shown.append({"kind": "file", "text": said})
    return shown


def shown_result(
    result: types.CallToolResult | types.InputRequiredResult, *, held: bool = False
) -> Shown:
    """A tool's answer; ``held``: the gateway's own answer for a call it
    held (read only then: an upstream's answer never says it was held)."""
    if isinstance(result, types.InputRequiredResult):
        said = "the tool asked for input; the playground cannot answer a tool yet"
        return Shown("tool", parts=[{"kind": "text", "text": said}], is_error=True)
    parts = []
    for item in result.content:
        if isinstance(item, types.TextContent):
            parts.append({"kind": "text", "text": item.text})
        elif isinstance(item, types.ResourceLink):
            parts.append({"kind": "url", "text": str(item.uri), "name": item.name})
        else:
            dumped = item.model_dump(mode="json", by_alias=True, exclude_none=True)
            parts.append({"kind": "data", "text": pretty(dumped)})
    structured = result.structured_content
    approval = ""
    if held and isinstance(structured, dict) and "approval" in structured:
        approval = str(structured["approval"])  # `McpApprovals`' held answer
    return Shown(
        "tool",
        parts=parts,
        is_error=bool(result.is_error),
        approval=approval,
        structured=pretty(structured) if structured is not None and not approval else "",
    )


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
