"""How an MCP upstream's failures are told (their classes are the one tree
of `adapters.errors`): a server that cannot be reached, or that answered
with a JSON-RPC error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from mcp import MCPError
from mcp_types import (
    INTERNAL_ERROR,
)

from adapters.errors import OwnFailure, UpstreamError
from adapters.mcp_http import (
    connect_failure,
)


def not_at_2025(exc: UpstreamError) -> bool:
    """The SDK server's answer when a handler's result has no 2025-11-25 form."""
    return exc.code == INTERNAL_ERROR and exc.message == "Handler returned an invalid result"


# What the SDK's Streamable HTTP client makes of an HTTP error answer that is
# not JSON-RPC (mcp/client/streamable_http.py): it keeps no status code.
HTTP_ERROR_ANSWERS = ("Not Found", "Server returned an error response")


def not_mcp(exc: MCPError) -> str:
    message = exc.error.message
    if message in HTTP_ERROR_ANSWERS:
        return (
            f"it answered an MCP request with an HTTP error ({message}), not JSON-RPC: "
            "is this the server's Streamable HTTP endpoint (often ending in /mcp), or an "
            "HTTP+SSE one (often ending in /sse: register it with transport sse)?"
        )
    return message


def describe(exc: BaseException) -> str:
    """A short, safe description: the innermost error of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return not_mcp(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_failure(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


T = TypeVar("T")


async def own_part(work: Awaitable[T]) -> T:
    """``work``, a part of the gateway's own in keeping a session (its
    credential, a record of the server's): a failure there is `OwnFailure`,
    never the server's -- a session is not dropped, nor the server called
    disconnected, for the gateway's database being down."""
    try:
        return await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise OwnFailure(describe(exc)) from exc
