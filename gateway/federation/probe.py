"""Registration's probe of a new MCP server: list its tools once, with the
credential the gateway's own requests carry -- or, for a `user_oauth`
server, learn that this must wait for its registrant's connection (which
cannot exist before the server does) -- and the health it starts with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2

from adapters.mcp import discover
from adapters.mcp_client import Connected, ToolList
from adapters.mcp_http import UpstreamAuth
from gateway.connections.errors import ConnectionRequired
from gateway.federation.credentials import UpstreamCredentials
from gateway.federation.upstreams import spec_of
from registry.mcp_rows import McpServerConfig
from registry.mcp_store import SqlMcpStore
from registry.models import HealthStatus


@dataclass(frozen=True)
class Probed:
    connected: Connected | None = None
    tools: ToolList = field(default_factory=list)
    awaiting: ConnectionRequired | None = None  # listed once the registrant connects
    transport: str | None = None  # how it answered (sse: Streamable HTTP the legacy way)


async def probe(
    config: McpServerConfig,
    credentials: UpstreamCredentials,
    http: Callable[[UpstreamAuth | None], httpx2.AsyncClient],
    *,
    deadline: float,
    detect_legacy: bool = False,
) -> Probed:
    """``detect_legacy``: a url registered without a transport is tried as
    HTTP+SSE when it answers Streamable HTTP the legacy way (`adapters.mcp_sse`)."""
    try:
        default = await credentials.default()
    except ConnectionRequired as waiting:
        return Probed(awaiting=waiting)
    found = await discover(
        spec_of(config), http, default, deadline=deadline, detect_legacy=detect_legacy
    )
    return Probed(found.connected, found.tools, transport=found.spec.transport)


async def record_first_health(store: SqlMcpStore, server_id: str, probed: Probed) -> None:
    connected = probed.connected
    if connected is None:
        waiting = probed.awaiting
        await store.record_health(
            server_id,
            HealthStatus.UNKNOWN,
            f"listed once its registrant connects an account: {waiting.connect_url}"
            if waiting is not None
            else None,
        )
        return
    await store.record_health(
        server_id,
        HealthStatus.HEALTHY,
        None,
        server_info=connected.server_info,
        protocol_version=connected.protocol_version,
    )
