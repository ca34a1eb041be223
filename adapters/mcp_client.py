"""Opening an SDK client to an MCP upstream (Streamable HTTP, the legacy
HTTP+SSE transport, or stdio), and registration's one-off probe of a server
(`discover`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import httpx2
import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters, stdio_client
from mcp.client import Transport as SdkTransport
from mcp.client import advertise
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

from adapters.errors import UpstreamTimeout, UpstreamUnavailable
from adapters.mcp_http import (
    Credential,
    UpstreamAuth,
)
from adapters.mcp_relay import (
    APP_EXTENSION,
    APP_SETTINGS,
    Callbacks,
    Source,
    on_log,
)
from adapters.mcp_sse import PostRefusals, sse_transport
from adapters.mcp_upstream_errors import describe, not_mcp
from adapters.mcp_wire import Wire

ToolList = list[dict[str, Any]]
# "sse": the 2024-11-05 HTTP+SSE transport (`adapters.mcp_sse`).
Transport = Literal["http", "sse", "stdio"]
# Who the gateway says it is to upstreams (the ``clientInfo`` it declares,
# and on 2026-07-28 stamps into each request's ``_meta``: `adapters.mcp_stamp`).
CLIENT_INFO = types.Implementation(name="switchboard", version="0.1.0")
_MAX_PAGES = 100  # a paginator that never ends cannot hang a listing
_Streams = TypeVar("_Streams")


@dataclass(frozen=True)
class UpstreamSpec:
    server_id: str
    transport: Transport
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Connected:
    """What the owner task learned on connecting."""

    protocol_version: str
    server_info: dict[str, Any] | None


@dataclass(frozen=True)
class UpstreamTimings:
    connect_seconds: float = 10.0
    probe_seconds: float = 30.0
    call_seconds: float = 30.0
    reconnect_min_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0


HttpFactory = Callable[[UpstreamAuth], httpx2.AsyncClient]
CredentialSource = Callable[[], Awaitable[Credential | None]]
OnTools = Callable[[ToolList], Awaitable[None]]
OnHealth = Callable[[bool, str | None, Connected | None], Awaitable[None]]
OnNotice = Callable[[types.ResourceUpdatedNotification], None]
ListKind = Literal["tools", "prompts"]
OnListChanged = Callable[[ListKind], None]


def open_client(
    spec: UpstreamSpec,
    http: HttpFactory,
    auth: UpstreamAuth,
    *,
    on_message: Any = None,
    timeout: float,
    mode: Literal["auto", "legacy"] = "auto",
) -> Client:
    """An (unentered) SDK client for ``spec``; ``auth`` adds the credential.

    Its callbacks relay what the server asks or logs mid-call to the caller
    of that call (`adapters.mcp_relay`); with no such caller they refuse.
    """
    if spec.transport == "http":
        assert spec.url is not None
        transport: Any = _http_transport(spec.url, http(auth))
    elif spec.transport == "sse":
        assert spec.url is not None
        transport = sse_transport(spec.url, http(auth))
        # A transport of the handshake era: `server/discover` has no place on it.
        mode = "legacy"
    else:
        assert spec.command is not None
        # The child gets the SDK's safe environment (PATH, HOME, ...: no
        # ``env`` given, `stdio_client` passes `get_default_environment()`),
        # never the gateway's own (which holds SWITCHBOARD_SECRET_KEY).
        transport = stdio_client(StdioServerParameters(command=spec.command, args=list(spec.args)))
    # The caller's capabilities out, untagged 2026-07-28 results read as
    # complete in (`adapters.mcp_wire`), once the session has negotiated.
    wire = Wire(transport)
    callbacks = Callbacks(Source(where(spec), spec.transport))
    client = Client(
        wire,
        read_timeout_seconds=timeout,
        message_handler=on_message,
        elicitation_callback=callbacks.elicitation,
        sampling_callback=callbacks.sampling,
        list_roots_callback=callbacks.list_roots,
        logging_callback=on_log,
        client_info=CLIENT_INFO,
        # The gateway relays MCP Apps to the clients that render them
        # (`registry.mcp_offerings.app_tool_meta`); a server that offers its
        # apps only to such clients offers them through the gateway too.
        extensions=[advertise(APP_EXTENSION, APP_SETTINGS)],
        cache=None,  # every listing must reach the server: it is how changes are seen
        mode=mode,
    )
    wire.negotiated = lambda: _negotiated(client)
    return client


def _negotiated(client: Client) -> str | None:
    """``client``'s protocol revision; None before its handshake is done."""
    try:
        return client.session.protocol_version
    except RuntimeError:  # not entered (yet): `Client.session` says so
        return None


def is_modern(client: Client) -> bool:
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS


def _http_transport(url: str, http: httpx2.AsyncClient) -> SdkTransport:
    """Streamable HTTP over ``http``, which lives exactly as long as the session."""
    return _closing(http, streamable_http_client(url, http_client=http, terminate_on_close=True))


@contextlib.asynccontextmanager
async def _closing(
    http: httpx2.AsyncClient, transport: AbstractAsyncContextManager[_Streams]
) -> AsyncIterator[_Streams]:
    """``transport``'s streams (whatever the SDK's transports yield), ``http``
    closed after it."""
    async with http, transport as streams:
        yield streams


async def list_all_tools(client: Client) -> ToolList:
    tools: ToolList = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
        tools.extend(_dumped(page.tools))
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


@dataclass(frozen=True)
class Discovered:
    """What registration's probe learned; ``spec`` is how the server was
    reached (HTTP+SSE when it answered Streamable HTTP the legacy way)."""

    connected: Connected
    tools: ToolList
    spec: UpstreamSpec


async def discover(
    spec: UpstreamSpec,
    http: HttpFactory,
    credential: Credential | None,
    *,
    deadline: float,
    detect_legacy: bool = False,
) -> Discovered:
    """Connect once, list the tools, disconnect (registration's probe).

    ``detect_legacy``: a Streamable HTTP attempt whose POST is answered with
    a 4xx is tried again as HTTP+SSE (`adapters.mcp_sse`, MCP "Backwards
    Compatibility"); if that fails too, the first failure is the one told.
    Opened and closed in the calling task, so it is safe in a request handler.
    """
    auth = UpstreamAuth()
    auth.default = credential
    refusals = PostRefusals()
    try:
        return await _discover(spec, refusals.watch(http), auth, deadline)
    except UpstreamUnavailable:
        if not (detect_legacy and spec.transport == "http" and refusals.statuses):
            raise
        with contextlib.suppress(UpstreamUnavailable):
            return await _discover(replace(spec, transport="sse"), http, auth, deadline)
        raise


async def _discover(
    spec: UpstreamSpec, http: HttpFactory, auth: UpstreamAuth, deadline: float
) -> Discovered:
    try:
        async with (
            asyncio.timeout(deadline),
            open_client(spec, http, auth, timeout=deadline) as client,
        ):
            return Discovered(connected_of(client), await list_all_tools(client), spec)
    except TimeoutError:
        raise UpstreamTimeout(f"{where(spec)} did not answer within {deadline:g}s") from None
    except MCPError as exc:
        raise UpstreamUnavailable(f"{where(spec)}: {not_mcp(exc)}") from None
    except Exception as exc:  # the SDK and transports raise many kinds; all mean "unreachable"
        raise UpstreamUnavailable(f"{where(spec)}: {describe(exc)}") from None


def connected_of(client: Client) -> Connected:
    info = client.server_info
    return Connected(
        protocol_version=client.protocol_version,
        server_info=info.model_dump(mode="json", exclude_none=True) if info else None,
    )


def where(spec: UpstreamSpec) -> str:
    return f"MCP server {spec.server_id}"


def _dumped(tools: list[types.Tool]) -> ToolList:
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


_TOOLS = TypeAdapter(list[types.Tool])


def listing_of(page: list[Any]) -> ToolList | None:
    """The listing a page of tools as JSON makes, each tool validated and
    dumped as `list_all_tools` does it (None: not a list of tools), to tell
    whether the SDK's listing is of that same page. (The SDK's listing also
    leaves out a tool whose `x-mcp-header` it refuses: such a page makes a
    listing longer than the SDK's, never equal to it.)"""
    try:
        return _dumped(_TOOLS.validate_python(page, by_name=False))
    except ValueError:
        return None
