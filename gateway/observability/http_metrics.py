"""HTTP requests counted by route template and status, and `/mcp` requests by
JSON-RPC method (`GatewayMetrics.observe_http`).

The route is the template the request matched (`/a2a/{agent_id}`,
`/flows/{flow_id}/runs`), never the raw path: an id or a probe for
`/wp-admin` must not make a new series. A request no route matched is
`(unmatched)`. The `/mcp` method is read from the body the endpoint itself
consumed (this middleware keeps the first chunk as it passes, and reads
nothing more), and is one of MCP's own methods or `other`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "(unmatched)"
MCP_PATH = "/mcp"
# MCP's methods (2025-11-25 and 2026-07-28): a label is one of these or "other".
MCP_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/list",
        "tasks/cancel",
        "tasks/result",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)
_METHOD = re.compile(rb'"method"\s*:\s*"([^"\\]{1,64})"')
_HEAD_BYTES = 4096  # "method" comes first in every client we know; enough to find it


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an app that fails before answering
        head = bytearray()
        mcp = scope["path"] == MCP_PATH and scope["method"] == "POST"

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(head) < _HEAD_BYTES:
                head.extend(message.get("body", b"")[: _HEAD_BYTES - len(head)])
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receiving if mcp else receive, sending)
        finally:
            metrics = metrics_of(scope)
            if metrics is not None:
                method = _mcp_method(bytes(head)) if mcp else None
                metrics.observe_http(_route(scope), scope["method"], status, method)


def _route(scope: Scope) -> str:
    """The template of the route that took the request. FastAPI's routes leave
    themselves in the scope; Starlette's own (the A2A and MCP doors, first in
    the table) are asked again, as the router did."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        matched, _ = route.matches(scope)
        if matched == Match.FULL:
            found = getattr(route, "path", None)
            return found if isinstance(found, str) else UNMATCHED
    return UNMATCHED


def _mcp_method(head: bytes) -> str:
    found = _METHOD.search(head)
    if found is None:
        return "other"
    method = found.group(1).decode("utf-8", "replace")
    return method if method in MCP_METHODS else "other"


def metrics_of(scope: Scope | None) -> Any:
    """The app's `GatewayMetrics`, from a request's scope (None before the
    app has started, or without a request: an MCP message over stdio)."""
    if scope is None:
        return None
    app = scope.get("app")
    state = getattr(getattr(app, "state", None), "switchboard", None)
    return getattr(state, "metrics", None)
