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

import binascii
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
    CancelTaskRequest,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
)
from a2a.utils.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import ParseError

from adapters.mcp import UpstreamError, UpstreamUnavailable
from gateway.agents.admission import FrontDoorParts
from gateway.agents.recorded import RecordedTaskHandler
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.pipeline import ApprovalRequired, Caller, DelegationDenied
from gateway.delegation.tasks import Owner
from gateway.delegation.upstream_failures import UpstreamBadAnswerError, UpstreamUnavailableError
from gateway.federation.federated_tools import FederatedTool, ToolNotFound, ToolQuarantined
from gateway.federation.federation import McpFederation
from gateway.federation.tool_messages import auth_required, task_of, tool_call
from registry.mcp_models import McpServerRecord


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
        await self._may_send(admission, params)
        tool, arguments = await self._named_tool(admission, params)
        result = await self._called(admission, tool, arguments, message)
        if isinstance(result, Task):  # waits for the user's consent
            return result
        if not isinstance(result, types.CallToolResult):
            raise UnsupportedOperationError(
                f"{tool.upstream_name} asked for more input, which is not relayed over A2A; "
                "call it from an MCP client"
            )
        try:
            task = task_of(message, tool, result)
        except (binascii.Error, ValueError, ParseError) as exc:
            raise UpstreamBadAnswerError(
                f"MCP server {admission.server_id} answered content it could not have meant: {exc}"
            ) from None
        await self._parts().tasks.record(
            admission.server_id, admission.owner, task, tool.upstream_name
        )
        return task

    async def _may_send(self, admission: McpAdmission, params: SendMessageRequest) -> None:
        """Refused before anything is decided: a push config, a task (an MCP
        tool's task is one call), another user's context."""
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

    async def _named_tool(
        self, admission: McpAdmission, params: SendMessageRequest
    ) -> tuple[FederatedTool, dict[str, Any]]:
        """The one tool of the server the message names, and its arguments."""
        # Quarantined tools too: calling one should say it is quarantined.
        everything = await self._federation().tools(include_uncallable=True)
        tools = [t for t in everything if t.server_id == admission.server_id]
        try:
            return tool_call(admission.server_id, params, tools)
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

    async def _called(
        self,
        admission: McpAdmission,
        tool: FederatedTool,
        arguments: dict[str, Any],
        message: Message,
    ) -> types.CallToolResult | types.InputRequiredResult | Task:
        """The tool called through the federation, its refusals as A2A errors
        (a missing connection: the task that waits for it)."""
        try:
            return await self._federation().call_tool(
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
            task = auth_required(message, needed)
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
