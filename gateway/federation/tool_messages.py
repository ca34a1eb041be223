"""An A2A message as one call of an MCP server's tool, and the tool's answer
as the ended A2A task (`gateway.federation.as_a2a`, whose docstring gives the
rules: where a message names its tool, which arguments it carries, how each
kind of content comes back)."""

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
    Role,
    SendMessageRequest,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.errors import (
    InvalidParamsError,
)
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value

from gateway.connections.errors import ConnectionRequired
from gateway.delegation.handoffs import SKILL_KEY, decide_named, named_in, proto_places
from gateway.federation.federated_tools import FederatedTool
from registry.mcp_names import SEPARATOR

# Where a message names its tool: these keys of every metadata place.
TOOL_KEYS = ("tool", SKILL_KEY)


def tool_call(
    server_id: str, params: SendMessageRequest, tools: list[FederatedTool]
) -> tuple[FederatedTool, dict[str, Any]]:
    """Which tool the message runs (decided from every place that can name
    it, see the module's doc), and its arguments."""
    own = {t.upstream_name: t for t in tools}
    by_name = own | {t.name: t for t in tools}
    offered = ", ".join(sorted(own)) or "none"
    message = params.message
    named = named_in(proto_places(params), TOOL_KEYS)
    data_parts = [
        (i, MessageToDict(part.data))
        for i, part in enumerate(message.parts)
        if part.HasField("data")
    ]
    if len(data_parts) > 1:
        raise InvalidParamsError(
            "send one data part: it holds the one tool call's arguments",
            data={"field": f"params.message.parts[{data_parts[1][0]}].data"},
        )
    for i, data in data_parts:
        if not isinstance(data, dict):
            raise InvalidParamsError('a data part must be {"tool": name, "arguments": {...}}')
        if "tool" in data:
            named[f"params.message.parts[{i}].data.tool"] = data["tool"]
    canonical: dict[str, Any] = {}
    for where, value in named.items():
        if isinstance(value, str):
            tool = by_name.get(value) or by_name.get(f"{server_id}{SEPARATOR}{value}")
            if tool is None:
                raise InvalidParamsError(
                    f"no tool {value!r} here; tools: {offered}", data={"field": where}
                )
            value = tool.upstream_name
        canonical[where] = value
    chosen = decide_named(server_id, list(own), canonical, noun="tool") if canonical else None
    if data_parts:
        ((_, data),) = data_parts
        if chosen is None:
            raise InvalidParamsError('a data part must be {"tool": name, "arguments": {...}}')
        arguments = data.get("arguments", {})
        if not isinstance(arguments, dict):
            raise InvalidParamsError("arguments must be an object")
        return own[chosen], arguments
    text = "".join(part.text for part in message.parts if part.HasField("text"))
    if chosen is not None:
        candidates = [own[chosen]]
    else:
        candidates = [t for t in tools if _one_string(t) is not None]
    if len(candidates) != 1 or (field := _one_string(candidates[0])) is None:
        raise InvalidParamsError(
            'name the tool: send a data part {"tool": name, "arguments": {...}}, or text with '
            f"metadata.tool naming a tool that takes one string; tools: {offered}"
        )
    return candidates[0], {field: text}


def _one_string(tool: FederatedTool) -> str | None:
    """The name of the tool's only input property, when it is a string."""
    schema = tool.definition.get("inputSchema") or {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or len(properties) != 1:
        return None
    ((name, spec),) = properties.items()
    return name if isinstance(spec, dict) and spec.get("type") == "string" else None


def task_of(message: Message, tool: FederatedTool, result: types.CallToolResult) -> Task:
    parts = [part for block in result.content if (part := _part_of(block)) is not None]
    if result.structured_content is not None:
        value = Value()
        ParseDict(result.structured_content, value)
        parts.append(Part(data=value, media_type="application/json"))
    state = TaskState.TASK_STATE_FAILED if result.is_error else TaskState.TASK_STATE_COMPLETED
    if result.is_error:
        text = " ".join(p.text for p in parts if p.HasField("text")) or "the tool failed"
        return _answered(message, state, text)
    task = _answered(message, state)
    task.artifacts.append(
        Artifact(artifact_id=str(uuid.uuid4()), name=tool.upstream_name, parts=parts)
    )
    return task


def _answered(message: Message, state: TaskState, said: str | None = None) -> Task:
    """A new task in ``state`` for ``message`` (kept in its history), with the
    agent's status message ``said``."""
    task_id = str(uuid.uuid4())
    context_id = message.context_id or str(uuid.uuid4())
    status = TaskStatus(state=state)
    if said is not None:
        status.message.CopyFrom(
            Message(
                message_id=str(uuid.uuid4()),
                role=Role.ROLE_AGENT,
                parts=[Part(text=said)],
                task_id=task_id,
                context_id=context_id,
            )
        )
    history = Message()
    history.CopyFrom(message)
    history.task_id, history.context_id = task_id, context_id
    return Task(id=task_id, context_id=context_id, status=status, history=[history])


def _part_of(block: Any) -> Part | None:
    if isinstance(block, types.TextContent):
        return Part(text=block.text)
    if isinstance(block, types.ResourceLink):
        return Part(url=str(block.uri), media_type=block.mime_type or "", filename=block.name)
    if isinstance(block, types.ImageContent | types.AudioContent):
        return Part(raw=base64.b64decode(block.data, validate=True), media_type=block.mime_type)
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return Part(text=resource.text, media_type=resource.mime_type or "text/plain")
        return Part(
            raw=base64.b64decode(resource.blob, validate=True),
            media_type=resource.mime_type or "application/octet-stream",
        )
    # An unknown content type still reaches the caller, as its JSON.
    dump = block.model_dump(mode="json", by_alias=True) if hasattr(block, "model_dump") else block
    return Part(text=json.dumps(dump), media_type="application/json")


def auth_required(message: Message, needed: ConnectionRequired) -> Task:
    text = (
        f"{needed.upstream}: {needed.reason}. Connect your account at {needed.connect_url}, "
        "then send the message again."
    )
    task = _answered(message, TaskState.TASK_STATE_AUTH_REQUIRED, text)
    task.metadata.update({"connect_url": needed.connect_url, "upstream": needed.upstream})
    return task
