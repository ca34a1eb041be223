"""`switchboard mcp-stdio`: the gateway's `/mcp` for clients that only speak stdio.

A message pipe, not a proxy: JSON-RPC messages from stdin go to the gateway
over Streamable HTTP with the user's bearer token, and the gateway's messages
come back on stdout (MCP 2025-11-25 "Transports": stdio and Streamable HTTP
carry the same messages). No client or server session sits in between, so
both revisions pass through untouched -- the `initialize` handshake and its
`Mcp-Session-Id` (kept by the SDK's HTTP transport), or 2026-07-28 requests
with their `_meta` envelope -- and so do progress, input requests and
cancellations.

One thing the pipe adds: a 2026-07-28 request over HTTP must repeat its
routing in headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`;
2026-07-28 "Transports", "Request headers"), which the SDK's client session
would normally stamp; here they are derived from the message itself.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.inbound import (
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import PROTOCOL_VERSION_META_KEY, JSONRPCNotification, JSONRPCRequest

logger = logging.getLogger(__name__)


def with_routing_headers(message: SessionMessage) -> SessionMessage:
    """Add the 2026-07-28 request headers to a request carrying that envelope."""
    inner = message.message
    if not isinstance(inner, JSONRPCRequest | JSONRPCNotification):
        return message
    params: dict[str, Any] = inner.params or {}
    meta = params.get("_meta")
    version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
    if not isinstance(version, str):  # handshake era: the transport sends the headers
        return message
    headers = {MCP_PROTOCOL_VERSION_HEADER: version, "Mcp-Method": inner.method}
    name_key = NAME_BEARING_METHODS.get(inner.method)
    if name_key is not None and isinstance(params.get(name_key), str):
        headers["Mcp-Name"] = encode_header_value(params[name_key])
    return SessionMessage(inner, metadata=ClientMessageMetadata(headers=headers))


async def bridge(url: str, token: str | None, *, timeout_seconds: float = 300.0) -> None:
    """Pipe stdin/stdout to the MCP endpoint at ``url`` until stdin closes."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(30, read=timeout_seconds)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (from_gateway, to_gateway),
        stdio_server() as (from_stdin, to_stdout),
        anyio.create_task_group() as group,
    ):

        async def upstream() -> None:
            async for message in from_stdin:
                if isinstance(message, Exception):
                    print(
                        f"switchboard mcp-stdio: bad message on stdin: {message}", file=sys.stderr
                    )
                    continue
                await to_gateway.send(with_routing_headers(message))
            group.cancel_scope.cancel()  # stdin closed: the client is gone

        async def downstream() -> None:
            async for message in from_gateway:
                if isinstance(message, Exception):
                    print(f"switchboard mcp-stdio: {message}", file=sys.stderr)
                    continue
                await to_stdout.send(SessionMessage(message.message))

        group.start_soon(upstream)
        group.start_soon(downstream)
