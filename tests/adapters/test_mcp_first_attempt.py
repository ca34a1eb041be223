"""`McpUpstream.wait_ready` ends with the first attempt to connect, whichever
way it ends: a server that refuses the gateway's own requests (here a vendor
whose MCP server wants a user's OAuth token, and the gateway has none for
itself) made a registration wait the whole connect timeout for nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.mcp import McpUpstream, UpstreamSpec, UpstreamTimings
from gateway.demo.vendor import Vendor
from tests.support.mcp_client_side import loopback_http


async def _nothing(*_: Any) -> None:
    return None


async def test_a_refused_first_attempt_ends_the_wait_for_readiness() -> None:
    with Vendor() as vendor:
        upstream = McpUpstream(
            UpstreamSpec("notes", "http", url=vendor.mcp_url),
            loopback_http,
            default_credential=_nothing,  # no token of the gateway's own
            on_tools=_nothing,
            on_health=_nothing,
            timings=UpstreamTimings(probe_seconds=60, call_seconds=10, reconnect_min_seconds=30),
        )
        task = asyncio.create_task(upstream.run())
        try:
            # Bounded by the test, not by the hour it is given: waiting for a
            # connection that cannot come would fail here instead of passing.
            ready = await asyncio.wait_for(upstream.wait_ready(3600), 60)
        finally:
            upstream.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert ready is False
    assert upstream.last_error is not None
