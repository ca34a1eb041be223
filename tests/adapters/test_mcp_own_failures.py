"""The gateway's own part of an MCP connection failing (its credential, the
record of the server's tools or health: its database down) is not the
server's failure (issue 57, item 11): a live session is kept, and a session
that cannot open for it says so as the cause of "not connected"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.errors import OwnFailure
from adapters.mcp import McpUpstream, ToolList, UpstreamSpec, UpstreamTimings, UpstreamUnavailable
from gateway.delegation.retry import Failure, classify
from gateway.federation.federated_tools import explain_failure
from gateway.storage.outages import DependencyUnavailable
from tests.support.mcp_client_side import loopback_http
from tests.support.mcp_servers import upstream_server


async def _nothing(*_: Any) -> None:
    return None


def _down() -> DependencyUnavailable:
    return DependencyUnavailable("database", "ConnectionRefusedError")


async def test_a_tools_record_that_fails_keeps_the_session() -> None:
    server, _, _ = upstream_server()
    reports = 0
    probed = asyncio.Event()

    async def on_tools(_tools: ToolList) -> None:
        nonlocal reports
        reports += 1
        if reports >= 3:  # the probes after the first listing, failing too
            probed.set()
        raise ConnectionRefusedError(111, "Connect call failed")  # the database's

    async def on_health(*_: Any) -> None:
        raise ConnectionRefusedError(111, "Connect call failed")

    upstream = McpUpstream(
        UpstreamSpec("tools", "http", url=server.url + "/mcp"),
        loopback_http,
        default_credential=_nothing,
        on_tools=on_tools,
        on_health=on_health,
        timings=UpstreamTimings(probe_seconds=0.05, call_seconds=10, reconnect_min_seconds=30),
    )
    task = asyncio.create_task(upstream.run())
    try:
        assert await asyncio.wait_for(upstream.wait_ready(60), 60)
        await asyncio.wait_for(probed.wait(), 30)
        assert upstream.ready and upstream.last_error is None
        result = await upstream.call_tool("add", {"a": 2, "b": 3}, credential=None)
        assert not getattr(result, "is_error", False)
    finally:
        upstream.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.stop()


async def test_a_session_the_gateway_could_not_open_names_its_own_failure() -> None:
    async def credential() -> None:
        raise _down()

    upstream = McpUpstream(
        UpstreamSpec("tools", "http", url="http://127.0.0.1:9/mcp"),
        loopback_http,
        default_credential=credential,
        on_tools=_nothing,
        on_health=_nothing,
        timings=UpstreamTimings(probe_seconds=60, call_seconds=10, reconnect_min_seconds=30),
    )
    task = asyncio.create_task(upstream.run())
    try:
        assert not await asyncio.wait_for(upstream.wait_ready(60), 60)
        with pytest.raises(UpstreamUnavailable) as failed:
            await upstream.call_tool("add", {}, credential=None)
    finally:
        upstream.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert isinstance(failed.value.__cause__, OwnFailure)
    assert isinstance(failed.value.__cause__.__cause__, DependencyUnavailable)
    # The gateway answers it as the outage, and holds nothing against the server.
    explained = explain_failure("tools", failed.value)
    assert isinstance(explained.error, DependencyUnavailable)
    assert explained.outcome == "dependency_unavailable"
    assert classify(failed.value) is Failure.REFUSED
