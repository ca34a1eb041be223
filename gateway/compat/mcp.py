"""The mcp SDK's private names the gateway's MCP front needs (mcp 2.x).

Each function says what the SDK lacks publicly; tests/gateway/compat/test_mcp.py
fails if an upgrade moves a name."""

from __future__ import annotations

from mcp.server.connection import Connection
from mcp.server.session import ServerSession


def connection_of(session: ServerSession) -> Connection:
    """The connection a request's ``session`` belongs to.

    A 2025-11-25 client's resource subscriptions, logging level and
    list-changed notices belong to its connection, and are sent on it after
    the request that asked for them is over. The SDK builds a new
    `ServerSession` for every request (`ServerRunner._make_context`) and
    hands handlers no public way to its `Connection` (its own TODO L54: the
    `Context` that will carry it is not built yet)."""
    connection: Connection = session._connection
    return connection
