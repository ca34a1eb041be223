"""A registered MCP server, served as an A2A agent through the A2A front door.

`/a2a/{server_id}` works for an MCP server as for an agent (the two share one
id space): the card has one skill per approved tool, and a message runs one
tool through `McpFederation.call_tool()` -- the same decision, minted
credential, quarantine check and audit as an MCP client's call. Which tool
is decided once, by the rule the A2A front door decides a skill by
(`gateway.delegation.handoffs`): every place a message can name it is read --
``tool`` and ``skill`` in the request's metadata, the message's and each
part's, and the data part's ``tool`` -- each by the tool's own name or its
federated ``{server}__{tool}`` name; the places that name one must name the
same tool, else the message is refused (-32602, naming the places, audited;
nothing is called). That tool, and no other, is called, with:

* the data part's ``arguments`` (``{"tool": "<name>", "arguments": {...}}``;
  ``tool`` may be left to the metadata; one data part at most: it is the one
  call's input); or
* the text, when the tool takes one string: the tool is the one named, or,
  named nowhere, the server's only tool taking one string.

A call is a whole task: the gateway answers with a task that has already
ended (completed, or failed when the tool reports an error), recorded for its
owner so `GetTask` and `ListTasks` work (A2A 1.0 §3.1). The result comes back
as an artifact: text content as text parts, `structuredContent` as a data
part, resource links as URL parts, embedded binary as raw parts.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import mcp_types as types
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    validate_request_params,
)
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Artifact,
    CancelTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.struct_pb2 import Value

from adapters.mcp import UpstreamError, UpstreamUnavailable
from gateway.agents.admission import FrontDoorParts
from gateway.agents.recorded import RecordedTaskHandler
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.handoffs import SKILL_KEY, decide_named, named_in, proto_places
from gateway.delegation.pipeline import ApprovalRequired, Caller, DelegationDenied
from gateway.delegation.tasks import Owner
from gateway.delegation.upstream_failures import UpstreamBadAnswerError, UpstreamUnavailableError
from gateway.federation.federated_tools import FederatedTool, ToolNotFound, ToolQuarantined
from gateway.federation.federation import McpFederation
from registry.mcp_models import McpServerRecord
from registry.mcp_names import SEPARATOR

# Where a message names its tool: these keys of every metadata place.
TOOL_KEYS = ("tool", SKILL_KEY)


@dataclass(frozen=True)
class McpAdmission:
    """An authenticated caller of an MCP server; the decision is per tool."""

    server_id: str
    caller: Caller
    owner: Owner
    trace_id: str
    extensions: frozenset[str] = field(default_factory=frozenset)

    @property
    def agent_id(self) -> str:
        return self.server_id


def mcp_card(record: McpServerRecord, tools: list[FederatedTool], url: str) -> AgentCard:
    """A 1.0 card for the server: one skill per approved tool."""
    skills = [
        AgentSkill(
            id=tool.upstream_name,
            name=str(tool.definition.get("title") or tool.upstream_name),
            description=str(tool.definition.get("description") or tool.upstream_name),
            tags=["mcp", "tool"],
            input_modes=["application/json", "text/plain"],
            output_modes=["application/json", "text/plain"],
        )
        for tool in tools
        if tool.server_id == record.id and tool.callable
    ]
    return AgentCard(
        name=record.name,
        description=f"The MCP server {record.name}, served as an A2A agent by Switchboard: "
        'one skill per tool; send a data part {"tool": ..., "arguments": {...}}.',
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=url, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=skills,
    )


class McpAgentHandler(RecordedTaskHandler):
    no_push = "an MCP tool's task ends with its answer"
    no_extended_card = "an MCP server has no extended card"

    def __init__(
        self,
        parts: Callable[[], FrontDoorParts],
        federation: Callable[[], McpFederation],
    ) -> None:
        self._parts = parts
        self._federation = federation

    # Messages -------------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        admission = self._admission(context)
        message = params.message
        if params.configuration.HasField("task_push_notification_config"):
            raise PushNotificationNotSupportedError("an MCP tool's task ends with its answer")
        if message.task_id:
            await self._own(admission, message.task_id)
            raise UnsupportedOperationError(
                f"task {message.task_id} has ended: an MCP tool's task is one call"
            )
        if message.context_id:
            # A2A 1.0 §3.1.3: another user's context is as good as none.
            owners = await self._parts().tasks.context_owners(
                admission.server_id, message.context_id
            )
            if owners and owners != {admission.owner}:
                raise TaskNotFoundError(f"context {message.context_id} not found")
        federation = self._federation()
        # Quarantined tools too: calling one should say it is quarantined.
        everything = await federation.tools(include_uncallable=True)
        tools = [t for t in everything if t.server_id == admission.server_id]
        try:
            tool, arguments = _tool_call(admission.server_id, params, tools)
        except InvalidParamsError as refused:
            # Before any decision (two tools named, say): nothing is called.
            await self._parts().delegations.refused(
                admission.caller,
                admission.server_id,
                event="a2a",
                trace_id=admission.trace_id,
                reason=str(refused),
            )
            raise
        try:
            result = await federation.call_tool(
                tool.name, arguments, caller=admission.caller, trace_id=admission.trace_id
            )
        except ToolNotFound:
            raise InvalidParamsError(f"no tool {tool.upstream_name}") from None
        except ApprovalRequired as pending:
            # Held calls are collected at /mcp or through an A2A agent's task;
            # an MCP tool served as an A2A agent cannot wait: refused, recorded.
            detail = "not called: call it at /mcp to have it approved"
            delegate = self._parts().delegate
            await delegate.record(pending.permit, "mcp", "approval_required", detail)
            raise UnsupportedOperationError(
                f"{tool.name} needs an admin's approval; {detail}"
            ) from None
        except DelegationDenied as denied:
            reasons = "; ".join(denied.decision.reasons)
            # -32602: the tool the message names is not one this caller may run.
            # (The SDK maps only its own error classes to codes, so the
            # front door's -32000 is not available once the SDK has the call.)
            raise InvalidParamsError(f"delegation refused: {reasons}") from None
        except ToolQuarantined as quarantined:
            raise UnsupportedOperationError(str(quarantined)) from None
        except ConnectionRequired as needed:
            # A2A's own word for it (a2a.proto TaskState): the task waits for
            # the user's consent, with the link; the caller sends it again
            # once they connected (nothing was sent upstream).
            task = _auth_required(message, needed)
            await self._parts().tasks.record(
                admission.server_id, admission.owner, task, tool.upstream_name
            )
            return task
        except UserCredentialUnavailable as missing:
            raise UnsupportedOperationError(f"{tool.name}: {missing.reason}") from None
        except UpstreamError as error:
            raise UpstreamBadAnswerError(
                f"MCP server {admission.server_id} answered error {error.code}: {error}"
            ) from None
        except UpstreamUnavailable as unavailable:
            raise UpstreamUnavailableError(str(unavailable)) from None
        if not isinstance(result, types.CallToolResult):
            raise UnsupportedOperationError(
                f"{tool.upstream_name} asked for more input, which is not relayed over A2A; "
                "call it from an MCP client"
            )
        try:
            task = _task_of(message, tool, result)
        except (binascii.Error, ValueError, ParseError) as exc:
            raise UpstreamBadAnswerError(
                f"MCP server {admission.server_id} answered content it could not have meant: {exc}"
            ) from None
        await self._parts().tasks.record(
            admission.server_id, admission.owner, task, tool.upstream_name
        )
        return task

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        yield await self.on_message_send(params, context)

    # Tasks ----------------------------------------------------------------

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        await self._own(self._admission(context), params.id)
        raise TaskNotCancelableError(f"task {params.id} has ended")

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        await self._own(self._admission(context), params.id)
        raise UnsupportedOperationError(f"task {params.id} has ended")
        yield  # pragma: no cover - makes this an async generator


# The message -> tool call -> task mapping (pure) ------------------------------


def _tool_call(
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


def _task_of(message: Message, tool: FederatedTool, result: types.CallToolResult) -> Task:
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


class McpAgents:
    """The `OtherAgents` of the A2A front door: registered MCP servers."""

    def __init__(
        self, parts: Callable[[], FrontDoorParts], federation: Callable[[], McpFederation]
    ) -> None:
        self._federation = federation
        self.handler = McpAgentHandler(parts, federation)

    async def admission(self, agent_id: str, caller: Caller, trace_id: str) -> McpAdmission | None:
        if await self._federation().store.get(agent_id) is None:
            return None
        owner = Owner(caller.subject, caller.issuer, caller)
        return McpAdmission(agent_id, caller, owner, trace_id)

    async def card(self, agent_id: str, url: str) -> tuple[AgentCard, datetime | None] | None:
        federation = self._federation()
        record = await federation.store.get(agent_id)
        if record is None:
            return None
        return mcp_card(record, await federation.tools(), url), record.updated_at


def _auth_required(message: Message, needed: ConnectionRequired) -> Task:
    text = (
        f"{needed.upstream}: {needed.reason}. Connect your account at {needed.connect_url}, "
        "then send the message again."
    )
    task = _answered(message, TaskState.TASK_STATE_AUTH_REQUIRED, text)
    task.metadata.update({"connect_url": needed.connect_url, "upstream": needed.upstream})
    return task
