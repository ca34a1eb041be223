"""What the unit tests of the MCP client side (`adapters.mcp*`) share: the
HTTP client the adapters are handed, allowed to reach loopback servers, and
a caller of one upstream call (`StubRelay`), and an upstream connected to a
loopback server with the `tools/call` pass-through (`connected`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp_types as types

from adapters.mcp import McpUpstream, UpstreamSpec, UpstreamTimings
from adapters.mcp_http import Credential, UpstreamAuth, checked_client
from adapters.mcp_passthrough import McpPassThrough
from registry.ssrf import AddressPolicy

LOOPBACK = AddressPolicy(allow_loopback=True)
FORM_ELICITATION: dict[str, Any] = {"elicitation": {"form": {}}}
KEY = Credential("X-Api-Key", "default-key-1")  # `connected`'s default credential


def loopback_http(auth: UpstreamAuth, cap: int = 1 << 20) -> httpx2.AsyncClient:
    """The adapters' HTTP client (`checked_client`) for servers on 127.0.0.1."""
    return checked_client(
        LOOPBACK, auth, connect_timeout_seconds=2, read_timeout_seconds=10, max_response_bytes=cap
    )


class StubRelay:
    """A caller as the adapters see it (`adapters.mcp_relay.CallRelay`): what
    it declared, the log level it asked for, the log lines it was sent; a
    question of the upstream's, or a line sent to a caller who asked for
    none (``level`` None), fails the test."""

    def __init__(
        self,
        capabilities: dict[str, Any] | None = None,
        level: types.LoggingLevel | None = None,
    ) -> None:
        self.capabilities = FORM_ELICITATION if capabilities is None else capabilities
        self.level = level
        self.lines: list[types.LoggingMessageNotificationParams] = []

    def upstream_capabilities(self) -> dict[str, Any]:
        return self.capabilities

    def log_level(self) -> types.LoggingLevel | None:
        return self.level

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        if self.level is None:
            raise AssertionError(f"a caller who asked for no log lines was sent {params}")
        self.lines.append(params)

    async def elicit(self, params: Any) -> Any:
        raise AssertionError("no question is asked here")

    async def sample(self, params: Any) -> Any:
        raise AssertionError("no question is asked here")

    async def list_roots(self) -> Any:
        raise AssertionError("no question is asked here")


@contextlib.asynccontextmanager
async def connected(
    url: str, *, cap: int = 1 << 20, event_cap: int | None = 1 << 20
) -> AsyncIterator[tuple[McpUpstream, list[int]]]:
    """An upstream (`McpUpstream`, default credential `KEY`) connected to the
    2026-07-28 server at ``url``, its `tools/call` through the pass-through,
    and one entry in the list per call the pass-through took."""

    def http(auth: UpstreamAuth) -> Any:
        return loopback_http(auth, cap)

    passthrough = McpPassThrough(
        LOOPBACK, connect_timeout_seconds=2, max_response_bytes=cap, max_sse_event_bytes=event_cap
    )
    used: list[int] = []
    inner = passthrough.call_tool

    async def counted(*args: Any, **kwargs: Any) -> Any:
        used.append(1)
        return await inner(*args, **kwargs)

    passthrough.call_tool = counted  # type: ignore[method-assign]

    async def default() -> Credential:
        return KEY

    async def nothing(*_: Any) -> None:
        return None

    upstream = McpUpstream(
        UpstreamSpec("s", "http", url=url + "/mcp"),
        http,
        default_credential=default,
        on_tools=nothing,
        on_health=nothing,
        timings=UpstreamTimings(probe_seconds=60, call_seconds=10, reconnect_min_seconds=0.1),
        passthrough=passthrough,
    )
    task = asyncio.create_task(upstream.run())
    try:
        assert await upstream.wait_ready(10), upstream.last_error
        assert upstream.connected is not None
        assert upstream.connected.protocol_version == "2026-07-28"
        yield upstream, used
    finally:
        upstream.stop()
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        await passthrough.aclose()
