"""What an upstream MCP server asks of the caller mid-call, routed to that caller.

The gateway's upstream sessions are shared by every caller, so anything the
server sends *during* a call -- a question for the user (`elicitation/create`),
a completion from the user's model (`sampling/createMessage`), the user's
roots (`roots/list`), a log line (`notifications/message`) -- has to reach the
one downstream request that caused it, and nobody else.

The SDK makes that possible without guessing: its Streamable HTTP client
reads a request's response stream in a task spawned from the caller's context,
and hands every message it reads to the session with that context
(`mcp.shared._context_streams`), so the client callbacks below run with the
caller's context variables. `CALL_RELAY`, set around one upstream call, is
therefore the caller's own relay. On 2025-11-25 a server sends those
requests on the call's stream (with ``related_request_id``), MCP 2025-11-25
"Transports" (Streamable HTTP, "Sending Messages to the Server" 5-6); a
request sent anywhere else -- the standalone GET stream, or over stdio, whose
single reader task is no caller's -- finds no relay and is refused, never
guessed at.

On 2026-07-28 connections the same relay supplies the caller's declared
client capabilities (`upstream_capabilities`), stamped into each request's
``_meta`` instead of the gateway's own (`caller_capabilities`), so a server
asks (in an `InputRequiredResult`) only what this caller's client can answer
(MCP 2026-07-28 "Multi round-trip requests": servers MUST NOT rely on
capabilities the client has not declared).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
import mcp_types as types
from mcp.client.session import ClientRequestContext
from mcp_types import CLIENT_CAPABILITIES_META_KEY, INVALID_REQUEST

logger = logging.getLogger(__name__)


class CallRelay(Protocol):
    """The downstream side of one upstream call (`gateway.mcp.relay`)."""

    def upstream_capabilities(self) -> dict[str, Any]:
        """The caller's client capabilities the gateway can carry back to it."""
        ...

    def log_level(self) -> types.LoggingLevel | None:
        """The lowest level of log line the caller wants from this call (None: none)."""
        ...

    async def elicit(
        self, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData: ...

    async def sample(
        self, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData: ...

    async def list_roots(self) -> types.ListRootsResult | types.ErrorData: ...

    async def log(self, params: types.LoggingMessageNotificationParams) -> None: ...


R = TypeVar("R")

# How long a call that ends waits for its withdrawn questions to be taken back.
WITHDRAW_SECONDS = 2.0


class _Call:
    """One upstream call's hold on its caller's relay: the value of `CALL_RELAY`.

    The SDK runs a server's mid-call request in a task of its own, which can
    outlive the call (a server may answer the call without waiting for its
    question, or time out on it); and a call's 2025-11-25 response stream is
    still read after the call was abandoned. So a call that ends takes its
    relay back: a question still open is withdrawn from the caller (its
    request is cancelled, which tells the caller's client), and what the
    server asks or logs afterwards goes nowhere."""

    def __init__(self, relay: CallRelay) -> None:
        self.relay = relay
        self._ended = False
        self._open: set[anyio.CancelScope] = set()
        self._settled: asyncio.Event | None = None

    async def relay_to_caller(
        self, what: str, send: Callable[[], Awaitable[R]]
    ) -> R | types.ErrorData:
        if self._ended:
            return _call_ended(what)
        with anyio.CancelScope() as scope:
            self._open.add(scope)
            try:
                return await send()
            finally:
                self._open.discard(scope)
                if not self._open and self._settled is not None:
                    self._settled.set()
        return _call_ended(what)  # withdrawn: the call ended meanwhile

    async def end(self) -> None:
        self._ended = True
        if not self._open:
            return
        self._settled = asyncio.Event()
        for scope in list(self._open):
            scope.cancel()
        # Shielded: a call ends by cancellation too; bounded: the caller's
        # stream may be stuck.
        with anyio.CancelScope(shield=True), anyio.move_on_after(WITHDRAW_SECONDS):
            await self._settled.wait()


# The call being made now, set around one upstream call.
CALL_RELAY: ContextVar[_Call | None] = ContextVar("mcp_call_relay", default=None)


@contextlib.asynccontextmanager
async def relaying(relay: CallRelay | None) -> AsyncIterator[None]:
    """Route what the server asks or logs during the enclosed call to
    ``relay``, until the call ends (then withdraw what is still open)."""
    call = _Call(relay) if relay is not None else None
    token = CALL_RELAY.set(call)
    try:
        yield
    finally:
        CALL_RELAY.reset(token)
        if call is not None:
            await call.end()


def _nobody_to_ask(what: str, source: Source | None = None) -> types.ErrorData:
    """The refusal of a request that reached no call: sent outside any call's
    stream, it names no request of the gateway's (MCP puts no related
    request id on the wire: the stream it arrives on is the only link, and
    2025-11-25 says the standalone stream SHOULD carry messages unrelated to
    any request), so no caller can be found and nobody is asked."""
    if source is None:
        where, server = "outside any call's stream", "an MCP server"
    elif source.transport == "stdio":
        where, server = "over stdio, where one reader serves every call", source.server
    elif source.transport == "sse":
        where, server = "on the HTTP+SSE stream, which serves every call", source.server
    else:
        where, server = "on the server's standalone (GET) stream", source.server
    logger.warning("%s from %s refused: it came %s and belongs to no call", what, server, where)
    return types.ErrorData(
        code=INVALID_REQUEST,
        message=f"{what} is only relayed on the stream of the call that needs it; "
        f"this request belongs to no call the gateway is making: it came {where}, "
        "which names no request, so there is no user to ask (send it on the stream "
        "of the request it belongs to)",
    )


def _call_ended(what: str) -> types.ErrorData:
    return types.ErrorData(
        code=INVALID_REQUEST, message=f"{what} not relayed: the call it belongs to has ended"
    )


@dataclass(frozen=True)
class Source:
    """Which upstream a session's requests come from, for refusals."""

    server: str  # "MCP server {id}"
    transport: str  # "http", "sse" or "stdio"


@dataclass(frozen=True)
class Callbacks:
    """The client callbacks for one upstream's sessions (`open_client`)."""

    source: Source

    async def elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return await on_elicitation(context, params, source=self.source)

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        return await on_sampling(context, params, source=self.source)

    async def list_roots(
        self, context: ClientRequestContext
    ) -> types.ListRootsResult | types.ErrorData:
        return await on_list_roots(context, source=self.source)


async def on_elicitation(
    context: ClientRequestContext,
    params: types.ElicitRequestParams,
    *,
    source: Source | None = None,
) -> types.ElicitResult | types.ErrorData:
    call = CALL_RELAY.get()
    if call is None:
        return _nobody_to_ask("elicitation", source)
    relay = call.relay
    answer = await call.relay_to_caller("elicitation", lambda: relay.elicit(params))
    return answer


async def on_sampling(
    context: ClientRequestContext,
    params: types.CreateMessageRequestParams,
    *,
    source: Source | None = None,
) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
    call = CALL_RELAY.get()
    if call is None:
        return _nobody_to_ask("sampling", source)
    relay = call.relay
    answer = await call.relay_to_caller("sampling", lambda: relay.sample(params))
    return answer


async def on_list_roots(
    context: ClientRequestContext, *, source: Source | None = None
) -> types.ListRootsResult | types.ErrorData:
    call = CALL_RELAY.get()
    if call is None:
        return _nobody_to_ask("roots/list", source)
    answer = await call.relay_to_caller("roots/list", call.relay.list_roots)
    return answer


async def on_log(params: types.LoggingMessageNotificationParams) -> None:
    call = CALL_RELAY.get()
    if call is not None:
        relay = call.relay
        await call.relay_to_caller("a log line", lambda: relay.log(params))
    # A log line tied to no call (the server's own chatter) has no one to go to.


# MCP Apps (SEP-1865, extension `io.modelcontextprotocol/ui`): HTML views a
# host renders for a tool. The gateway renders none; it relays them.
APP_EXTENSION = "io.modelcontextprotocol/ui"
APP_SETTINGS: dict[str, Any] = {"mimeTypes": ["text/html;profile=mcp-app"]}
# What the gateway's own requests (listings, probes) declare: no question can
# be answered, and apps are relayed (so they are listed).
OWN_CAPABILITIES: dict[str, Any] = {"extensions": {APP_EXTENSION: APP_SETTINGS}}


def caller_capabilities(params: dict[str, Any] | None) -> None:
    """Put the caller's capabilities where the SDK stamped its own, in a
    2026-07-28 request's ``params`` (in place; `adapters.mcp_wire` for the
    SDK's requests, `adapters.mcp_passthrough` for its own).

    The SDK stamps one fixed set into every request's ``_meta`` (the
    callbacks this client registered), and a ``_meta`` passed to a call
    cannot override that key. So the key is replaced with the current
    relay's capabilities, or for the gateway's own requests (listings,
    probes), which can answer no question, with `OWN_CAPABILITIES`. A
    request without the key (an earlier revision's) is left alone.
    """
    meta = params.get("_meta") if params is not None else None
    if isinstance(meta, dict) and CLIENT_CAPABILITIES_META_KEY in meta:
        meta[CLIENT_CAPABILITIES_META_KEY] = upstream_capabilities()


def upstream_capabilities() -> dict[str, Any]:
    """The capabilities a 2026-07-28 request declares upstream: the current
    caller's, or `OWN_CAPABILITIES` for the gateway's own requests
    (`caller_capabilities` puts them in the SDK's requests; the
    pass-through's own stamp, `adapters.mcp_stamp`, stamps the same)."""
    call = CALL_RELAY.get()
    return call.relay.upstream_capabilities() if call is not None else OWN_CAPABILITIES
