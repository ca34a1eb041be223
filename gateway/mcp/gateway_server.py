"""The SDK `Server` behind `/mcp`: what it declares, who it says it is, and
which handlers answer it (`gateway_server`).

It declares ``tools.listChanged`` and ``prompts.listChanged`` to 2025-11-25
clients, and on a virtual server (`/mcp/{name}`, `gateway.mcp.sets`) it
introduces itself as that set -- name, title, description, instructions and
icon in `initialize`, `server/discover` and the `serverInfo` stamped into
2026-07-28 answers -- read from the request's `current_set`.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary
from mcp.server.subscriptions import ListenHandler
from mcp.shared.exceptions import MCPDeprecationWarning

from gateway.mcp.auth import MCP_PATH
from gateway.mcp.errors import OutageBoundary
from gateway.mcp.front_offerings import OfferingHandlers
from gateway.mcp.notify import ToolListNotifier
from gateway.mcp.server_spans import McpServerSpans, without_sdk_spans
from gateway.mcp.sets import current_set
from gateway.mcp.transport_settings import request_state_security
from gateway.settings import Settings
from gateway.storage.outages import DependencyUnavailable


class GatewayServer(Server[Any]):
    """Declares ``tools.listChanged`` and ``prompts.listChanged`` to 2025-11-25
    clients (the handshake-era capabilities take it from `NotificationOptions`;
    at 2026-07-28 the SDK derives it from `subscriptions/listen` being served).
    Its outermost middleware is the gateway's span and duration per message
    (`gateway.mcp.server_spans`), in place of the SDK's own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.middleware[:] = [McpServerSpans(), *without_sdk_spans(self.middleware)]
        # `server/discover`: the SDK's own answer, with a set's instructions.
        sdk = self.get_request_handler("server/discover")
        if sdk is None:
            raise RuntimeError("this mcp SDK's Server does not answer server/discover itself")

        async def discover(ctx: ServerRequestContext, params: types.RequestParams) -> Any:
            result = await sdk.handler(ctx, params)
            chosen = current_set.get()
            if chosen is None or not isinstance(result, types.DiscoverResult):
                return result
            return result.model_copy(update={"instructions": chosen.instructions or None})

        self.add_request_handler("server/discover", types.RequestParams, discover)

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True, prompts_changed=True),
            experimental_capabilities,
            extensions,
        )
        chosen = current_set.get()
        if chosen is None:
            return options
        # A virtual server (`/mcp/{name}`) introduces itself as its set.
        return options.model_copy(
            update={
                "server_name": chosen.name,
                "title": chosen.title,
                "description": chosen.description or None,
                "instructions": chosen.instructions or None,
                "icons": [types.Icon(src=chosen.icon)] if chosen.icon else None,
            }
        )

    @property
    def server_info_stamp(self) -> dict[str, Any]:
        """The `serverInfo` stamped into 2026-07-28 answers: a set's own."""
        stamp = super().server_info_stamp
        chosen = current_set.get()
        if chosen is not None:
            stamp["name"], stamp["title"] = chosen.name, chosen.title
            stamp.pop("description", None)
            if chosen.description:
                stamp["description"] = chosen.description
            stamp.pop("icons", None)
            if chosen.icon:
                stamp["icons"] = [{"src": chosen.icon}]
        return stamp


class ToolHandlers(Protocol):
    """What answers `tools/list` and `tools/call` (`gateway.mcp.front.McpFront`)."""

    async def on_list_tools(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult: ...

    async def on_call_tool(
        self, ctx: ServerRequestContext, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult: ...

    def input_schema(self, name: str) -> Mapping[str, Any] | None: ...


def gateway_server(
    tools: ToolHandlers,
    offered: OfferingHandlers,
    notifier: ToolListNotifier,
    outage: Callable[[ServerRequestContext, DependencyUnavailable], Awaitable[None]],
    settings: Settings,
    version: str,
) -> Server[Any]:
    """The server `/mcp` serves: ``tools`` answer the tools, ``offered`` the
    resources, prompts, completions and logging; the request-state and outage
    boundaries (``outage`` audits what an outage refused) around them."""
    with warnings.catch_warnings():
        # `logging/setLevel` is deprecated as of 2026-07-28 (SEP-2577), but
        # 2025-11-25 clients still send it.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        server: Server[Any] = GatewayServer(
            "switchboard",
            version=version,
            title="Switchboard",
            description=(
                "The MCP tools, resources and prompts of every server federated "
                "by this gateway that you may use"
            ),
            on_list_tools=tools.on_list_tools,
            on_call_tool=tools.on_call_tool,
            on_subscriptions_listen=ListenHandler(notifier.bus),
            on_list_resources=offered.on_list_resources,
            on_list_resource_templates=offered.on_list_resource_templates,
            on_read_resource=offered.on_read_resource,
            on_subscribe_resource=offered.on_subscribe_resource,
            on_unsubscribe_resource=offered.on_unsubscribe_resource,
            on_list_prompts=offered.on_list_prompts,
            on_get_prompt=offered.on_get_prompt,
            on_completion=offered.on_completion,
            on_set_logging_level=offered.on_set_logging_level,
            # Runs before the handlers, for every 2026-07-28 tools/call with
            # arguments (Mcp-Param-* header checks); without it the SDK would
            # run a whole tools/list per call.
            get_tool_input_schema=tools.input_schema,
        )
    server.middleware.append(
        RequestStateBoundary(
            request_state_security(settings),
            default_audience=settings.effective_resource_id + MCP_PATH,
        )
    )
    server.middleware.append(OutageBoundary(outage))
    return server
