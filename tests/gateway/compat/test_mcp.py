"""The mcp SDK private name `gateway.compat.mcp` touches is where it expects
it and does what the gateway relies on: each test fails if an upgrade of the
mcp SDK moves or changes it. A real SDK server and client, on a 2025-11-25
connection (the only one whose state the gateway keeps by connection)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server import Server, ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.session import ServerSession

from gateway.compat import mcp as compat


async def test_each_request_has_its_own_session_on_one_connection() -> None:
    seen: list[tuple[ServerSession, Connection]] = []

    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        seen.append((ctx.session, compat.connection_of(ctx.session)))
        return types.ListToolsResult(tools=[])

    server: Server[Any] = Server("compat-test", on_list_tools=on_list_tools)
    async with Client(server, mode="legacy") as client:
        await client.list_tools()
        await client.list_tools()
    (first, connection), (second, again) = seen
    # Why the gateway needs the connection: the session is the request's.
    assert first is not second
    assert isinstance(connection, Connection) and again is connection
    # What the gateway does with it after the request: notify on its channel.
    assert callable(connection.outbound.notify)
    assert connection.protocol_version == first.protocol_version
