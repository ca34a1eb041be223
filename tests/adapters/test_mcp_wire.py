"""`adapters.mcp_wire`: the caller's capabilities out, untagged 2026-07-28
results read as complete in, at the transport the SDK's client is given.

The wrapper alone over anyio memory streams first; then the SDK's client as
the gateway opens it (`open_client`) against a real SDK server over
Streamable HTTP on 127.0.0.1, and over stdio."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context
from mcp.shared.message import SessionMessage
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)
from pydantic import ValidationError

from adapters import mcp_wire
from adapters.mcp_client import UpstreamSpec, open_client
from adapters.mcp_http import UpstreamAuth
from adapters.mcp_relay import OWN_CAPABILITIES, relaying
from adapters.mcp_wire import Wire
from tests.support.mcp_client_side import StubRelay, loopback_http
from tests.support.mcp_servers import ToolBox
from tests.support.odd_upstreams import Oddities, odd_server

MODERN = "2026-07-28"
BARE = {"content": [{"type": "text", "text": "hi"}]}
THEIRS: dict[str, Any] = {"elicitation": {"form": {}}}


# The wrapper alone -------------------------------------------------------------------


class Received:
    """A transport's read stream that, as the SDK's context-aware one does,
    tells the context the last message was received in."""

    def __init__(self, inner: MemoryObjectReceiveStream[Any]) -> None:
        self.inner = inner
        self.last_context: contextvars.Context | None = None
        self.closed = False

    async def receive(self) -> Any:
        item = await self.inner.receive()
        self.last_context = contextvars.copy_context()
        return item

    def __aiter__(self) -> Received:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()

    async def __aenter__(self) -> Received:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Pipes:
    """Both ends of a transport's two streams, to be the server."""

    def __init__(self) -> None:
        self.to_client, from_server = anyio.create_memory_object_stream[Any](10)
        self.received = Received(from_server)
        self.to_server, self.from_client = anyio.create_memory_object_stream[SessionMessage](10)

    @contextlib.asynccontextmanager
    async def transport(self) -> AsyncIterator[tuple[Any, Any]]:
        try:
            yield self.received, self.to_server
        finally:
            for stream in (self.to_client, self.received.inner, self.to_server, self.from_client):
                stream.close()

    async def request(self, writes: Any, request_id: int, method: str = "tools/call") -> Any:
        """What the server receives of a request the SDK stamped."""
        meta: dict[str, Any] = {CLIENT_CAPABILITIES_META_KEY: {"sampling": {}, "roots": {}}}
        params: dict[str, Any] = {"name": "t", "_meta": meta}
        await writes.send(
            SessionMessage(
                JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params)
            )
        )
        return (await self.from_client.receive()).message

    async def answer(self, reads: Any, request_id: int | str, result: dict[str, Any]) -> Any:
        """What the SDK's dispatcher reads of the server's answer."""
        await self.to_client.send(
            SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result))
        )
        return await reads.receive()


def _capabilities(message: Any) -> Any:
    return message.params["_meta"][CLIENT_CAPABILITIES_META_KEY]


async def test_a_2026_request_carries_the_callers_capabilities_and_its_result_is_complete() -> None:
    pipes = Pipes()
    wire = Wire(pipes.transport())
    wire.negotiated = lambda: MODERN
    async with wire as (reads, writes):
        # The gateway's own request: no question can be answered, apps are relayed.
        assert _capabilities(await pipes.request(writes, 1)) == OWN_CAPABILITIES
        async with relaying(StubRelay(THEIRS)):
            assert _capabilities(await pipes.request(writes, 2)) == THEIRS
        answer = await pipes.answer(reads, 2, BARE)
        assert answer.message.result == {**BARE, "resultType": "complete"}
        # Answered once: a second answer to the same id is not amended.
        assert (await pipes.answer(reads, 2, BARE)).message.result == BARE
        # The peer may echo an id as a string; the SDK correlates it, and so does this.
        assert (await pipes.answer(reads, "1", BARE)).message.result["resultType"] == "complete"
        tagged = {**BARE, "resultType": "input_required"}
        await pipes.request(writes, 3)
        assert (await pipes.answer(reads, 3, tagged)).message.result == tagged


async def test_nothing_is_touched_before_negotiation_nor_on_earlier_revisions() -> None:
    for version in (None, "2025-11-25"):
        pipes = Pipes()
        wire = Wire(pipes.transport())
        wire.negotiated = lambda v=version: v  # type: ignore[misc]
        async with wire as (reads, writes):
            async with relaying(StubRelay(THEIRS)):
                sent = await pipes.request(writes, 1)
            assert _capabilities(sent) == {"sampling": {}, "roots": {}}
            assert (await pipes.answer(reads, 1, BARE)).message.result == BARE


async def test_an_error_or_a_cancel_forgets_the_request() -> None:
    pipes = Pipes()
    wire = Wire(pipes.transport())
    wire.negotiated = lambda: MODERN
    async with wire as (reads, writes):
        await pipes.request(writes, 1)
        await pipes.request(writes, 2)
        await pipes.to_client.send(
            SessionMessage(
                JSONRPCError(jsonrpc="2.0", id=1, error=types.ErrorData(code=-1, message="no"))
            )
        )
        error = await reads.receive()
        assert isinstance(error, SessionMessage) and isinstance(error.message, JSONRPCError)
        cancel = {"requestId": 2, "reason": "caller cancelled"}
        await writes.send(
            SessionMessage(
                JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params=cancel)
            )
        )
        sent = (await pipes.from_client.receive()).message
        assert isinstance(sent, JSONRPCNotification) and sent.params == cancel
        # Forgotten: a late answer to either is not read (nor amended) as theirs.
        for request_id in (1, 2):
            assert (await pipes.answer(reads, request_id, BARE)).message.result == BARE


async def test_the_requests_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_wire, "MAX_REMEMBERED", 2)
    pipes = Pipes()
    wire = Wire(pipes.transport())
    wire.negotiated = lambda: MODERN
    async with wire as (reads, writes):
        for request_id in (1, 2, 3):
            await pipes.request(writes, request_id)
        assert (await pipes.answer(reads, 1, BARE)).message.result == BARE  # the oldest: gone
        assert (await pipes.answer(reads, 3, BARE)).message.result["resultType"] == "complete"


async def test_the_read_stream_is_the_transports_in_all_else() -> None:
    pipes = Pipes()
    wire = Wire(pipes.transport())
    async with wire as (reads, writes):
        assert reads.last_context is None
        await pipes.to_client.send(ValueError("a transport's failure"))
        await pipes.to_client.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=9, result={})))
        pipes.to_client.close()
        async with reads:
            items = [item async for item in reads]
            # The SDK's dispatcher reads it after each message, to run what
            # the server asks in the context of the task that received it.
            assert reads.last_context is pipes.received.last_context is not None
        assert isinstance(items[0], ValueError) and items[1].message.id == 9
        assert pipes.received.closed
        await writes.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await writes.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=1, result={})))


# The SDK's client over real transports -----------------------------------------------


async def caller_capabilities_seen(ctx: Context) -> str:
    """The client capabilities this request's ``_meta`` arrived with."""
    meta = ctx.request_context.meta or {}
    return json.dumps(meta.get(CLIENT_CAPABILITIES_META_KEY))


# A stdio server that tells one variable of its environment.
ENVIRONMENT = """
import os
from mcp.server.mcpserver import MCPServer

server = MCPServer("environment")


@server.tool()
async def environment(name: str) -> str:
    return os.environ.get(name, "")


server.run("stdio")
"""


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_through_the_sdk_an_untagged_result_is_complete_and_capabilities_the_callers() -> (
    None
):
    box = ToolBox()
    box.server.add_tool(caller_capabilities_seen, description="The capabilities it was sent.")
    server = odd_server(Oddities(bare=True), box)  # every result without `resultType`
    url = server.url + "/mcp"
    try:
        # The SDK's client alone cannot read such a result (the reason for the wire).
        async with (
            loopback_http(UpstreamAuth()) as http,
            Client(streamable_http_client(url, http_client=http)) as plain,
        ):
            assert plain.protocol_version == MODERN
            with pytest.raises(ValidationError):
                await plain.session.call_tool("add", {"a": 1, "b": 1})
        spec = UpstreamSpec("odd", "http", url=url)
        async with open_client(spec, loopback_http, UpstreamAuth(), timeout=10) as client:
            assert client.protocol_version == MODERN
            result = await client.session.call_tool("add", {"a": 2, "b": 3})
            assert isinstance(result, types.CallToolResult) and _text(result) == "5"
            assert result.result_type == "complete"
            async with relaying(StubRelay(THEIRS)):
                theirs = await client.session.call_tool("caller_capabilities_seen", {})
            own = await client.session.call_tool("caller_capabilities_seen", {})
        assert isinstance(theirs, types.CallToolResult) and isinstance(own, types.CallToolResult)
        # Not the set the SDK stamps (every callback the gateway registered).
        assert json.loads(_text(theirs)) == THEIRS
        assert json.loads(_text(own)) == OWN_CAPABILITIES
    finally:
        server.stop()


async def test_a_stdio_server_gets_the_sdks_safe_environment_not_the_gateways(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", "not-for-children")
    spec = UpstreamSpec("child", "stdio", command=sys.executable, args=("-c", ENVIRONMENT))
    async with open_client(spec, loopback_http, UpstreamAuth(), timeout=20) as client:
        result = await client.session.call_tool("environment", {"name": "SWITCHBOARD_SECRET_KEY"})
        path = await client.session.call_tool("environment", {"name": "PATH"})
    assert isinstance(result, types.CallToolResult) and isinstance(path, types.CallToolResult)
    assert _text(result) == ""
    assert _text(path) == os.environ["PATH"]
