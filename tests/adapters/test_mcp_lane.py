"""Unit tests of `LegacyLane`'s lifecycle: a lost session is replaced, and
news of an older session's loss (a late 404, a call that failed on it) never
ends the session that replaced it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import anyio
import httpx2
from mcp import Client

from adapters.mcp import LegacyLane, UpstreamTimings
from registry.tls import client_tls

URL = "http://upstream.test/mcp"


class FakeClient:
    """Stands for one lane session's `mcp.Client`."""

    def __init__(self, lane: LegacyLane, number: int) -> None:
        self.lane = lane
        self.session_id = f"s{number}"
        self.closed = False

    async def __aenter__(self) -> FakeClient:
        # What the lane's response hook sees of the handshake.
        await self.lane.saw_response(
            httpx2.Response(
                200,
                headers={"mcp-session-id": self.session_id},
                request=httpx2.Request("POST", URL),
            )
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.closed = True


async def live_client(lane: LegacyLane) -> FakeClient:
    """The lane's live client, which is one of ours."""
    client: object = await lane.client()
    assert isinstance(client, FakeClient)
    return client


def not_found(session_id: str) -> httpx2.Response:
    """The server's 404 to a call that named ``session_id``."""
    request = httpx2.Request(
        "POST",
        URL,
        headers={"mcp-session-id": session_id},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}},
    )
    return httpx2.Response(404, request=request)


async def test_news_of_an_older_session_never_ends_its_successor() -> None:
    opened: list[FakeClient] = []
    lane: LegacyLane

    def open_lane() -> Any:
        client = FakeClient(lane, len(opened) + 1)
        opened.append(client)
        return client

    lane = LegacyLane(open_lane, UpstreamTimings(connect_seconds=5))
    runner = asyncio.create_task(lane.run())
    try:
        first = await live_client(lane)
        assert first is opened[0]
        await lane.saw_response(not_found("s1"))  # the server forgot it
        second = await live_client(lane)
        assert second is opened[1]
        assert opened[0].closed

        # A second call that was in flight on the first session meets its 404 late.
        await lane.saw_response(not_found("s1"))
        await anyio.wait_all_tasks_blocked()  # the lane's task did what it would
        assert await live_client(lane) is second
        assert not second.closed
        assert len(opened) == 2

        # So does one that failed on it (the connection closed under it).
        lane.lost("connection closed", cast(Client, first))  # a FakeClient stands for a Client
        await anyio.wait_all_tasks_blocked()
        assert await live_client(lane) is second
        assert not second.closed

        # The live session's own loss still replaces it.
        lane.lost("connection closed", cast(Client, second))
        third = await live_client(lane)
        assert third is opened[2]
        assert second.closed
    finally:
        lane.stop()
        await asyncio.wait_for(runner, 5)


async def test_a_call_that_failed_on_a_replaced_primary_session_leaves_the_new_one() -> None:
    """The same rule for the primary session: only a failure on the live
    client wakes the owner to reconnect."""
    from adapters.mcp import McpUpstream, UpstreamSpec

    async def nothing(*_: Any) -> None:
        return None

    upstream = McpUpstream(
        UpstreamSpec("alpha", "http", url=URL),
        lambda auth: httpx2.AsyncClient(verify=client_tls()),
        default_credential=nothing,
        on_tools=nothing,
        on_health=nothing,
        timings=UpstreamTimings(),
    )
    old, live = cast(Client, object()), cast(Client, object())  # only their identity counts
    upstream._client = live
    upstream._failure(ConnectionError("reset"), client=old)
    assert not upstream._broken.is_set()
    upstream._failure(ConnectionError("reset"), client=live)
    assert upstream._broken.is_set()
