"""The SDK `Server` behind `/mcp`: what it declares, and who it says it is.

It declares ``tools.listChanged`` and ``prompts.listChanged`` to 2025-11-25
clients, and on a virtual server (`/mcp/{name}`, `gateway.mcp.sets`) it
introduces itself as that set -- name, title, description, instructions and
icon in `initialize`, `server/discover` and the `serverInfo` stamped into
2026-07-28 answers -- read from the request's `current_set`.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions

from gateway.mcp.server_spans import McpServerSpans, without_sdk_spans
from gateway.mcp.sets import current_set


class GatewayServer(Server[Any]):
    """Declares ``tools.listChanged`` and ``prompts.listChanged`` to 2025-11-25
    clients (the handshake-era capabilities take it from `NotificationOptions`;
    at 2026-07-28 the SDK derives it from `subscriptions/listen` being served).
    Its outermost middleware is the gateway's span and duration per message
    (`gateway.mcp.server_spans`), in place of the SDK's own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.middleware[:] = [McpServerSpans(), *without_sdk_spans(self.middleware)]

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

    async def _handle_discover(
        self, ctx: ServerRequestContext, params: types.RequestParams | None
    ) -> types.DiscoverResult:
        result = await super()._handle_discover(ctx, params)
        chosen = current_set.get()
        if chosen is None:
            return result
        return result.model_copy(update={"instructions": chosen.instructions or None})

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
