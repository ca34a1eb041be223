"""A probe's raw first page of `tools/list` (`UpstreamCalls.first_tools_page`,
`McpUpstream._list_and_report`) against a real SDK server (`MCPServer`,
Streamable HTTP, stateless, 2026-07-28) on 127.0.0.1, whose answers to a
listing a wrapper may replace: whatever comes back that is not one whole,
well-formed page is no page -- the SDK lists as it always did, the listing
it finds is handed on, and no page is kept to stand for it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.inspecting import buffered
from tests.support.mcp_client_side import connected
from tests.support.servers import ServerThread

CAP = 64 * 1024


class Tamper:
    """Replaces the answer to the next `tools/list` with ``answer`` (a
    function of the request's id: status, content type, body), once; or
    holds each `tools/list` ``delay`` seconds. Counts the listings seen."""

    def __init__(self) -> None:
        self.answer: Any = None
        self.delay = 0.0
        self.listings = 0
        self.counting = False  # every listing counted, none changed

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            changing = self.answer is not None or self.delay or self.counting
            if scope["type"] != "http" or not changing:
                await app(scope, receive, send)
                return
            body, replay = await buffered(receive)
            request = json.loads(body) if body else {}
            if request.get("method") != "tools/list":
                await app(scope, replay, send)
                return
            self.listings += 1
            if self.counting:
                await app(scope, replay, send)
                return
            if self.answer is None:
                await asyncio.sleep(self.delay)
                await app(scope, replay, send)
                return
            answer, self.answer = self.answer, None
            status, content_type, content = answer(request["id"])
            headers = [(b"content-type", content_type.encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})

        return wrapped


def _result(request_id: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode()


BAD_ANSWERS = {
    "tools not a list": lambda i: (200, "application/json", _result(i, {"tools": "nope"})),
    "a second page": lambda i: (200, "application/json", _result(i, {"tools": [], "nextCursor": "2"})),
    "not JSON": lambda i: (200, "application/json", b"{not json"),
    "over the cap": lambda i: (200, "application/json", _result(i, {"tools": [], "x": "y" * CAP})),
    "an error": lambda i: (200, "application/json", json.dumps(
        {"jsonrpc": "2.0", "id": i, "error": {"code": -32603, "message": "no"}}).encode()),
    "a server error": lambda i: (500, "text/plain", b"down"),
    "a result not an object": lambda i: (200, "application/json", _result(i, ["tools"])),
}  # fmt: skip


def _server(tamper: Tamper) -> ServerThread:
    server = MCPServer("upstream")

    @server.tool()
    async def add(a: int, b: int) -> int:
        return a + b

    @server.tool()
    async def echo(text: str) -> str:
        return text

    def build(_url: str) -> Any:
        return tamper.middleware(server.streamable_http_app(stateless_http=True))

    return ServerThread(build).start()


@pytest.mark.parametrize("bad", sorted(BAD_ANSWERS))
def test_a_raw_page_that_is_not_one_good_page_is_no_page(bad: str) -> None:
    tamper = Tamper()
    server = _server(tamper)

    async def scenario() -> None:
        async with connected(server.url, cap=CAP, event_cap=CAP) as (upstream, _used):
            client = upstream._client
            assert client is not None
            page = await upstream.first_tools_page(client)
            assert page is not None and sorted(t["name"] for t in page) == ["add", "echo"]
            tamper.answer = BAD_ANSWERS[bad]
            assert await upstream.first_tools_page(client) is None
            assert tamper.answer is None  # the bad answer was the one read
            # A probe whose raw read is bad lists through the SDK: the
            # listing is handed on, and no page stands for it.
            # (A good page: the session's listing, found without the SDK's.)
            await upstream._list_and_report(client, probe=True)
            assert upstream.probes_unchanged == 1 and upstream._page is not None
            tamper.answer = BAD_ANSWERS[bad]
            await upstream._list_and_report(client, probe=True)
            assert tamper.answer is None and upstream.probes_unchanged == 1
            assert upstream._page is None and upstream._listed is not None
            assert sorted(t["name"] for t in upstream._listed) == ["add", "echo"]
            # The next probes read a good page again: each the listing held.
            await upstream._list_and_report(client, probe=True)
            await upstream._list_and_report(client, probe=True)
            assert upstream.probes_unchanged == 3

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_a_sessions_first_probe_reads_the_page_alone_and_a_changed_one_is_listed() -> None:
    # The session's own listing read no page: its first probe finds the
    # page makes the listing held, with no listing through the SDK (one
    # `tools/list` at the server); a page that changed is listed through it.
    tamper = Tamper()
    server = _server(tamper)

    async def scenario() -> None:
        async with connected(server.url, cap=CAP, event_cap=CAP) as (upstream, _used):
            client = upstream._client
            assert client is not None and upstream._page is None
            held = upstream._listed
            tamper.counting = True
            await upstream._list_and_report(client, probe=True)
            assert (tamper.listings, upstream.probes_unchanged) == (1, 1)
            assert upstream._listed is held and upstream._page is not None
            upstream._page = None
            upstream._listed = [*held[:1]]  # as if the server's tools had been one fewer
            await upstream._list_and_report(client, probe=True)
            assert (tamper.listings, upstream.probes_unchanged) == (3, 1)  # page, then the SDK's
            assert sorted(t["name"] for t in upstream._listed) == ["add", "echo"]
            # A session whose own SDK has not listed (its first listing
            # failed before it) lists through it, whatever the page.
            upstream._page, upstream._listed_by = None, None
            await upstream._list_and_report(client, probe=True)
            assert (tamper.listings, upstream.probes_unchanged) == (5, 1)
            assert upstream._listed_by is client

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_a_raw_read_that_times_out_fails_the_probe_without_a_second_wait() -> None:
    # A server that does not answer a listing in time fails the probe as the
    # SDK's listing would (its session is then reconnected), after one wait:
    # not the raw read's, then the SDK's own again.
    tamper = Tamper()
    server = _server(tamper)

    async def scenario() -> None:
        async with connected(server.url) as (upstream, _used):
            client = upstream._client
            assert client is not None
            upstream._timings = replace(upstream._timings, call_seconds=0.5)
            tamper.delay = 5.0
            with pytest.raises(TimeoutError):
                await upstream._list_and_report(client, probe=True)
            assert tamper.listings == 1  # the raw read's; the SDK did not list after it

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
