"""`gateway.mcp.single_exchange` writes what the mcp SDK's private 2026-07-28
entry writes, and the fast path mirrors the entry of the SDK installed:
each test fails when an upgrade of the SDK changes what they copy (review
gateway/mcp/fastpath.py and single_exchange.py against it, then update
`MIRRORED_SDK` and `ENTRY_DIGEST`). The end-to-end comparison of the two
paths is tests/e2e/test_mcp_fastpath.py."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import inspect
import weakref
from importlib.metadata import version
from typing import Any

import pytest
from mcp.server import Server
from mcp.server import _streamable_http_modern as sdk
from mcp.server.connection import Connection
from mcp.server.runner import serve_one
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.exceptions import MCPError
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    INVALID_PARAMS,
    PROTOCOL_VERSION_META_KEY,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    ListToolsResult,
)
from starlette.datastructures import Headers
from starlette.types import Message

from gateway.mcp import fastpath
from gateway.mcp import single_exchange as wire

# sha256 of the SDK source the fast path mirrors (mcp 2.3.0): the 2026-07-28
# entry, its dispatch context, writers and Mcp-Param check, `serve_one`, the
# manager's era routing, the transport security check, and the constants.
ENTRY_DIGEST = "89cc437a47154a4707cf40c0ea9497487f4b9ce001182182002c3a2cf80992bf"


def test_the_fast_path_mirrors_the_installed_sdk() -> None:
    parts = (
        sdk.handle_modern_request,
        sdk._SingleExchangeDispatchContext,
        sdk._to_jsonrpc_response,
        sdk._sse_event,
        sdk._write,
        sdk._mcp_param_rejection,
        serve_one,
        StreamableHTTPSessionManager._handle_request,
        TransportSecurityMiddleware.__init__,
    )
    source = "".join(inspect.getsource(part) for part in parts)
    source += repr((sdk._SSE_PING_INTERVAL, sdk._SSE_HEADERS))
    assert hashlib.sha256(source.encode()).hexdigest() == ENTRY_DIGEST
    assert version("mcp") == fastpath.MIRRORED_SDK and fastpath.sdk_matches()


def test_the_window_and_the_headers_are_the_sdks() -> None:
    assert wire.PING_SECONDS == sdk._SSE_PING_INTERVAL
    assert wire.SSE_HEADERS == sdk._SSE_HEADERS


REPLIES: list[Any] = [
    JSONRPCResponse(jsonrpc="2.0", id=7, result={"content": [], "é": 1}),
    JSONRPCError(jsonrpc="2.0", id=7, error=ErrorData(code=INVALID_PARAMS, message="bad")),
    JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=-32700, message="Parse error")),
    JSONRPCError(jsonrpc="2.0", id="x", error=ErrorData(code=-32002, message="unknown")),
]


@pytest.mark.parametrize("msg", REPLIES)
async def test_a_reply_is_written_as_the_sdk_writes_it(msg: Any) -> None:
    async def written(write: Any) -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:  # pragma: no cover -- a response never reads
            raise AssertionError

        await write(msg, {"type": "http"}, receive, send)
        return sent

    assert await written(wire.write_json) == await written(sdk._write)
    assert wire.sse_event(msg) == sdk._sse_event(msg)


def test_a_notification_is_an_event_as_the_sdks() -> None:
    note = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"p": 1})
    assert wire.sse_event(note) == sdk._sse_event(note)


async def _succeeds() -> dict[str, Any]:
    return {"content": []}


async def _fails(error: Exception) -> dict[str, Any]:
    raise error


@pytest.mark.parametrize("error", [MCPError(INVALID_PARAMS, "bad"), RuntimeError("internal")])
async def test_a_handlers_outcome_is_the_reply_the_sdk_makes(error: Exception) -> None:
    assert await wire.reply(3, _succeeds()) == await sdk._to_jsonrpc_response(3, _succeeds())
    ours = await wire.reply(3, _fails(error))
    assert ours == await sdk._to_jsonrpc_response(3, _fails(error))


def test_the_dispatch_context_has_the_sdks_members() -> None:
    def members(cls: type) -> set[str]:
        fields = {f.name for f in dataclasses.fields(cls)}
        return fields | {n for n, _ in inspect.getmembers(cls, inspect.iscoroutinefunction)}

    # Ours has the sink its exchange writes to; the SDK's, a memory stream.
    assert members(wire.ExchangeContext) == members(sdk._SingleExchangeDispatchContext)


SCHEMA = {
    "type": "object",
    "properties": {"where": {"type": "string", "x-mcp-header": "Region"}, "n": {"type": "integer"}},
}


@pytest.mark.parametrize(
    ("arguments", "headers"),
    [
        ({"where": "eu", "n": 1}, {"mcp-param-region": "eu"}),
        ({"where": "eu", "n": 1}, {"mcp-param-region": "us"}),
        ({"where": "eu", "n": 1}, {}),
        ({}, {"mcp-param-region": "eu"}),
        ({}, {}),
        (None, {}),
    ],
)
async def test_the_mcp_param_check_is_the_sdks(
    arguments: dict[str, Any] | None, headers: dict[str, str]
) -> None:
    app: Server[Any] = Server("t", get_tool_input_schema=lambda name: SCHEMA)
    params: dict[str, Any] = {"name": "regional"}
    if arguments is not None:
        params["arguments"] = arguments
    req = JSONRPCRequest(jsonrpc="2.0", id=1, method="tools/call", params=params)

    class _Request:  # what the SDK's check reads of a request: its headers
        def __init__(self) -> None:
            self.headers = Headers(headers)

    ours = await wire.param_rejection(app, Headers(headers), req)
    its = await sdk._mcp_param_rejection(app, _Request(), req, None, None)  # type: ignore[arg-type]
    assert ours == its
    if headers.get("mcp-param-region") == "us":
        assert ours is not None  # a header that disagrees with its argument


# A 2026-07-28 request's envelope: its version, client and capabilities.
LISTING = {
    "_meta": {
        PROTOCOL_VERSION_META_KEY: "2026-07-28",
        CLIENT_INFO_META_KEY: {"name": "t", "version": "1"},
        CLIENT_CAPABILITIES_META_KEY: {},
    }
}


async def _no_tools(_ctx: Any, _params: Any) -> ListToolsResult:
    return ListToolsResult(tools=[])


async def _connection_left_after(serve: Any) -> bool:
    """Whether a `tools/list` served by ``serve`` leaves its `Connection` for the
    cyclic collector (alive with the collector off, after the call)."""
    connection = Connection.from_envelope("2026-07-28", None, None)
    dctx = wire.ExchangeContext(
        transport=TransportContext(kind="streamable-http", can_send_request=False),
        request_id=1,
        message_metadata=None,
        sink=None,  # type: ignore[arg-type]  # the listing notifies nothing
    )
    server: Server[Any] = Server("t", on_list_tools=_no_tools)
    left = weakref.ref(connection)
    collecting = gc.isenabled()
    gc.disable()
    try:
        await serve(server, dctx, "tools/list", LISTING, connection=connection, lifespan_state=None)
        del connection, dctx
        return left() is not None
    finally:
        if collecting:
            gc.enable()
        gc.collect()


async def test_a_call_leaves_no_garbage_for_the_collector() -> None:
    # The SDK's `serve_one` leaves each call's runner in a reference cycle;
    # ours frees it as the call returns (no young collection paid for it).
    assert await _connection_left_after(serve_one)
    assert not await _connection_left_after(wire.serve_one)
