"""The pieces of a 2026-07-28 single-exchange answer, as the mcp SDK writes
them, for the `/mcp` fast path (`gateway.mcp.fastpath`).

The SDK keeps these in a private module (`mcp.server._streamable_http_modern`,
entered only through `StreamableHTTPSessionManager.handle_request`), so the
fast path owns them here: a few lines each, built on the SDK's public
pieces (`modern_error_data`, `ERROR_CODE_HTTP_STATUS`,
`validate_mcp_param_headers`, the `DispatchContext` protocol). What they write
is what the SDK writes (MCP 2026-07-28, Streamable HTTP: one POST, one
response -- JSON, or an SSE stream of the request's notifications ending in
it); `tests/e2e/test_mcp_fastpath.py` compares the two byte for byte, and
`tests/gateway/mcp/test_single_exchange.py` fails when an upgrade of the SDK
changes the code they mirror.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import anyio
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import ServerRunner, aclose_shielded, modern_error_data
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PARAM_HEADER_PREFIX,
    InboundLadderRejection,
    validate_mcp_param_headers,
)
from mcp.shared.message import MessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    ProgressToken,
    RequestId,
)
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

# Seconds a silent handler runs before the answer commits to SSE, and between
# keepalive pings after (a proxy's idle-read timeout must not close it).
PING_SECONDS: float = 15.0
SSE_HEADERS: Final[list[tuple[bytes, bytes]]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_PARAM_PREFIX: Final = MCP_PARAM_HEADER_PREFIX.lower()  # ASGI header names are lowercase

Reply = JSONRPCResponse | JSONRPCError


class Sink(Protocol):
    async def send(self, event: bytes) -> None: ...


def sse_event(msg: Reply | JSONRPCNotification) -> bytes:
    """One JSON-RPC message as an SSE ``event: message`` frame."""
    body = msg.model_dump(mode="json", by_alias=True, exclude_none=True)
    data = json.dumps(body, separators=(",", ":"))
    return f"event: message\r\ndata: {data}\r\n\r\n".encode()


async def write_json(msg: Reply, scope: Scope, receive: Receive, send: Send) -> None:
    """A reply as ``application/json``, an error with the HTTP status MCP
    2026-07-28 maps its code to (`ERROR_CODE_HTTP_STATUS`)."""
    status = 200
    if isinstance(msg, JSONRPCError):
        status = ERROR_CODE_HTTP_STATUS.get(msg.error.code, 200)
    body = msg.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(msg, JSONRPCError) and msg.id is None:
        body["id"] = None  # JSON-RPC 2.0 section 5: `id` is null, never absent
    await Response(
        json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json"
    )(scope, receive, send)


async def serve_one(
    server: Server[Any],
    dctx: ExchangeContext,
    method: str,
    params: Mapping[str, Any] | None,
    *,
    connection: Connection,
    lifespan_state: Any,
) -> dict[str, Any]:
    """The SDK's `serve_one` (one request, one `ServerRunner`, the
    connection's exit stack closed after), less its garbage: the runner's
    `on_request` is a `functools.cached_property` of its own bound method, a
    reference cycle that keeps the runner, its `Connection` and what that
    holds (~16 containers a call) alive until the cyclic collector's next
    young collection, which then took 40-90 ms under load (40,000 objects,
    every ~2,500 calls). Dropping the cached value (as deleting the
    attribute clears a `cached_property`) frees them by reference count
    when the call returns."""
    runner = ServerRunner(server, connection, lifespan_state)
    try:
        return await runner.on_request(dctx, method, params)
    finally:
        await aclose_shielded(connection)
        vars(runner).pop("on_request", None)


async def reply(request_id: RequestId, handled: Awaitable[dict[str, Any]]) -> Reply:
    """The handler's outcome as the reply to ``request_id``: a failure as the
    SDK's modern entries word it (`modern_error_data`: no internals on the wire)."""
    try:
        result = await handled
    except Exception as exc:
        return JSONRPCError(jsonrpc="2.0", id=request_id, error=modern_error_data(exc))
    return JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)


@dataclass
class ExchangeContext:
    """The `DispatchContext` (`mcp.shared.dispatcher`) of one 2026-07-28
    exchange: no back-channel (a 2026-07-28 server sends its client no
    requests); the request's notifications go to ``sink``, its response."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: MessageMetadata
    sink: Sink
    progress_token: ProgressToken | None = None
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = field(default=False, init=False)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> None:
        body = dict(params) if params is not None else None
        event = sse_event(JSONRPCNotification(jsonrpc="2.0", method=method, params=body))
        try:
            await self.sink.send(event)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            logger.debug("dropped %s: response stream closed", method)

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)


async def param_rejection(
    app: Server[Any], headers: Headers, req: JSONRPCRequest
) -> InboundLadderRejection | None:
    """A `tools/call`'s ``Mcp-Param-*`` headers checked against the tool's
    input schema, from the server's `get_tool_input_schema` (which the
    fast path requires: without it the SDK lists the tools first)."""
    lookup = app.get_tool_input_schema
    params = req.params or {}
    name, arguments = params.get("name"), params.get("arguments")
    if lookup is None or not isinstance(name, str):
        return None
    if arguments is not None and not isinstance(arguments, Mapping):
        return None
    arguments = arguments or {}
    if not arguments and not any(header.startswith(_PARAM_PREFIX) for header in headers):
        return None  # no values and no headers: nothing to disagree
    try:
        schema = lookup(name)
    except Exception:
        # As the SDK: the header check never breaks a call that would work.
        logger.exception("Mcp-Param header validation skipped: get_tool_input_schema raised")
        return None
    return None if schema is None else validate_mcp_param_headers(schema, arguments, headers)
