"""A leaner driver for 2026-07-28 `tools/call` POSTs on `/mcp`.

Everything a 2026-07-28 request goes through is what the SDK's own entry
(`StreamableHTTPSessionManager.handle_request`) does for it: the transport
security check (DNS rebinding: Host, Origin, Content-Type), the Accept check,
the JSON-RPC parse and envelope validation, the duplicated routing header
check, `classify_inbound_request` (header/body consistency), the
`Mcp-Param-*` checks, then `serve_one` with the server's middlewares
(OpenTelemetry, the sealed `requestState` boundary), the handler, the result
serialisation and the `serverInfo` stamp. Only the last step differs here:
in SSE mode the SDK runs the handler as one task, a disconnect watcher as
another and itself waits on a memory stream for the handler's notifications,
which cost the gateway about a quarter of its CPU per call
(docs/history/performance-to-2026-11-27.md, "A leaner driver"). Here the
handler runs in the request's own task; one small task waits for the
client's disconnect (and cancels the handler, which closes the upstream
POST); a notification commits `text/event-stream` and is written straight
from the handler's task; a timer does the SDK's 15 s
deferral and keepalive pings. What goes on the wire is what the SDK writes
(`gateway.mcp.single_exchange`: the SDK keeps its writers private).

Only a POST at a 2026-07-28-era version whose body is one `tools/call`
request comes here, and only once every check above has passed; anything
else, and any check's rejection, goes to the SDK with the body replayed, so
its answer is the SDK's, code and status included. The driver mirrors the
SDK's private entry, so it is used only with the SDK release it was written
against (`MIRRORED_SDK`; tests/gateway/mcp/test_single_exchange.py fails on
any other); otherwise every request goes to the SDK.
`SWITCHBOARD_MCP_FAST_PATH=0` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from importlib.metadata import version
from typing import Any, Final

import anyio
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
from mcp.shared.inbound import (
    MCP_PROTOCOL_VERSION_HEADER,
    InboundLadderRejection,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import JSONRPCRequest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from gateway.mcp import single_exchange as wire
from gateway.mcp.single_exchange import ExchangeContext, Reply

logger = logging.getLogger(__name__)

# The mcp release whose 2026-07-28 entry (`handle_modern_request` and what it
# calls, `serve_one`, the manager's era routing) this driver mirrors. Any
# other: every request takes the SDK's path.
MIRRORED_SDK: Final = "2.3.0"

_VERSION_HEADER: Final = MCP_PROTOCOL_VERSION_HEADER.encode("ascii")


@functools.cache
def sdk_matches() -> bool:
    return version("mcp") == MIRRORED_SDK


class ServerLifespan:
    """The server's lifespan, remembering what it yielded while entered: the
    state the SDK's manager hands each request's handler context (it enters
    the lifespan once, in `run`). Public API: `Server.lifespan`."""

    def __init__(self, inner: Callable[[Server[Any]], AbstractAsyncContextManager[Any]]) -> None:
        self._inner = inner
        self._entered: dict[object, Any] = {}  # in the order entered

    @property
    def state(self) -> tuple[Any] | None:
        """(the first entry's state,) while entered, else None."""
        return next(((state,) for state in self._entered.values()), None)

    @contextlib.asynccontextmanager
    async def __call__(self, server: Server[Any]) -> AsyncIterator[Any]:
        async with self._inner(server) as state:
            entry = object()
            self._entered[entry] = state
            try:
                yield state
            finally:
                del self._entered[entry]


def _replay(body: bytes, receive: Receive) -> Receive:
    """The request's body once more, then the connection's own messages."""
    cached: deque[Message] = deque([{"type": "http.request", "body": body, "more_body": False}])

    async def replay() -> Message:
        if cached:
            return cached.popleft()
        return await receive()

    return replay


class _Exchange:
    """The response side of one SSE-mode exchange, as the SDK's loop writes it:
    JSON if the handler finishes within the deferral window without emitting,
    else `text/event-stream` from the first notification (or the window's end),
    with a comment ping after every window without an event."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._lock: asyncio.Lock | None = None  # made on the first SSE write
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            wire.PING_SECONDS, self._due
        )
        self._pinging: asyncio.Task[None] | None = None
        self.streaming = False
        self.closed = False

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _write(self, body: bytes) -> None:
        if not self.streaming:
            self.streaming = True
            await self._send(
                {"type": "http.response.start", "status": 200, "headers": wire.SSE_HEADERS}
            )
        await self._send({"type": "http.response.body", "body": body, "more_body": True})
        self._last = self._loop.time()

    async def send(self, event: bytes) -> None:
        """The dispatch context's sink: a notification from the handler."""
        if self.closed:
            raise anyio.ClosedResourceError
        async with self._locked():
            if self.closed:
                raise anyio.ClosedResourceError
            await self._write(event)

    def _due(self) -> None:
        self._timer = None
        if self.closed:
            return
        wait = self._last + wire.PING_SECONDS - self._loop.time()
        if wait > 0:
            self._timer = self._loop.call_later(wait, self._due)
        elif self._pinging is None:
            self._pinging = self._loop.create_task(self._ping())

    async def _ping(self) -> None:
        try:
            async with self._locked():
                if not self.closed:
                    await self._write(b": ping\r\n\r\n")
        finally:
            self._pinging = None
        if not self.closed:
            self._timer = self._loop.call_later(wire.PING_SECONDS, self._due)

    async def finish(self, msg: Reply, scope: Scope, receive: Receive) -> None:
        """The handler's answer: the last SSE event, or JSON if nothing was sent."""
        if self._lock is None:  # nothing written, no ping under way: no one to wait for
            self.close()
            await wire.write_json(msg, scope, receive, self._send)
            return
        async with self._lock:
            self.close()
            if self.streaming:
                await self._send(
                    {"type": "http.response.body", "body": wire.sse_event(msg), "more_body": False}
                )
            else:
                await wire.write_json(msg, scope, receive, self._send)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.closed = True
        self._stop_timer()


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive()).get("type") != "http.disconnect":
        pass  # pragma: no cover
    scope.cancel()


class McpFastPath:
    """ASGI, in place of the SDK's `StreamableHTTPASGIApp` (inside `McpAuth`)."""

    def __init__(self, manager: StreamableHTTPSessionManager, max_body_size: int) -> None:
        self.manager = manager
        self.sdk = StreamableHTTPASGIApp(manager)
        self.security = TransportSecurityMiddleware(manager.security_settings)
        # The SDK's own body limit, as its manager applies it (413 above it).
        self._buffered = RequestBodyLimitMiddleware(self._modern, max_body_size)
        # Entered by the manager's `run`, before any request.
        self.lifespan = ServerLifespan(manager.app.lifespan)
        manager.app.lifespan = self.lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not self.manager.json_response
            and _modern(scope)
        ):
            await self._buffered(scope, receive, send)
        else:
            await self.sdk(scope, receive, send)

    async def _fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The manager's own entry; its body limit again (the body is within it).
        await self.manager.handle_request(scope, receive, send)

    async def _modern(self, scope: Scope, receive: Receive, send: Send) -> None:
        running = self.lifespan.state
        if running is None:
            await self._fallback(scope, receive, send)  # raises as the SDK does
            return
        # The SDK's ladder, in its order; any rejection is the SDK's to answer.
        request = Request(scope, receive)
        err = await self.security.validate_request(request, is_post=True)
        if err is not None:
            await err(scope, receive, send)  # the SDK's own response
            return
        has_json, has_sse = check_accept_headers(request)
        if not (has_json and has_sse):
            await self._fallback(scope, receive, send)
            return
        body = await request.body()
        admitted = await self._admitted(request, body)
        if admitted is None:
            await self._fallback(scope, _replay(body, receive), send)
            return
        req, verdict = admitted
        connection = Connection.from_envelope(
            verdict.protocol_version, verdict.client_info, verdict.client_capabilities
        )
        exchange = _Exchange(send)
        dctx = ExchangeContext(
            transport=TransportContext(
                kind="streamable-http", can_send_request=False, headers=request.headers
            ),
            request_id=req.id,
            message_metadata=ServerMessageMetadata(request_context=request),
            sink=exchange,
            progress_token=progress_token_from_params(req.params),
        )
        watcher: asyncio.Task[None] | None = None
        try:
            with anyio.CancelScope() as cancel:
                # Client disconnect -> cancel the handler (and so the upstream call).
                watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, cancel))
                msg = await wire.reply(
                    req.id,
                    wire.serve_one(
                        self.manager.app,
                        dctx,
                        req.method,
                        req.params,
                        connection=connection,
                        lifespan_state=running[0],
                    ),
                )
                await exchange.finish(msg, scope, receive)
        finally:
            exchange.close()
            if watcher is not None:
                watcher.cancel()

    async def _admitted(
        self, request: Request, body: bytes
    ) -> tuple[JSONRPCRequest, InboundModernRoute] | None:
        """The rest of the SDK's ladder, in its order, for a `tools/call`: the
        request and its route, or None for anything the SDK is to answer."""
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not (
            isinstance(decoded, dict) and decoded.get("method") == "tools/call" and "id" in decoded
        ):
            return None
        try:
            req = JSONRPCRequest.model_validate(decoded)
        except ValidationError:
            return None
        if find_duplicated_routing_header(request.headers.items()) is not None:
            return None
        verdict = classify_inbound_request(decoded, headers=dict(request.headers))
        if isinstance(verdict, InboundLadderRejection):
            return None
        app = self.manager.app
        if app.get_tool_input_schema is None:
            return None  # the SDK's header check lists the tools: its path
        rejection = await wire.param_rejection(app, request.headers, req)
        return None if rejection is not None else (req, verdict)


def _modern(scope: Scope) -> bool:
    """The manager's era routing: a version header that is not a handshake one."""
    for key, value in scope["headers"]:
        if key == _VERSION_HEADER:
            return value.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS
    return False
