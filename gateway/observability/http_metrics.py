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
from dataclasses import dataclass

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.mcp_methods import MCP_METHODS
from gateway.observability.metrics import GatewayMetrics

UNMATCHED = "(unmatched)"
MCP_PATH = "/mcp"
_METHOD = re.compile(rb'"method"\s*:\s*"([^"\\]{1,64})"')
_HEAD_BYTES = 4096  # "method" comes first in every client we know; enough to find it


# Where a request's scope carries the app's metrics (`metrics_of`).
METRICS_KEY = "switchboard.metrics"


@dataclass
class MetricsSlot:
    """The app's `GatewayMetrics`, once its lifespan has made them: the
    middleware is installed when the app is created, before they exist."""

    metrics: GatewayMetrics | None = None


class HttpMetrics:
    def __init__(self, app: ASGIApp, slot: MetricsSlot) -> None:
        self.app = app
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.slot.metrics
        if scope["type"] != "http" or metrics is None:
            await self.app(scope, receive, send)
            return
        scope[METRICS_KEY] = metrics  # for what the request meets inside (`metrics_of`)
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


def metrics_of(scope: Scope | None) -> GatewayMetrics | None:
    """The app's `GatewayMetrics`, from a request's scope (None before the
    app has started, or without a request: an MCP message over stdio)."""
    found = scope.get(METRICS_KEY) if scope is not None else None
    return found if isinstance(found, GatewayMetrics) else None
