"""The `tools/call` pass-through (`adapters.mcp_passthrough`) against real SDK
servers (`MCPServer`, Streamable HTTP, stateless, 2026-07-28) on 127.0.0.1,
through `McpUpstream.call_tool` as the federation calls it."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

import mcp_types as types
import pytest
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from adapters.mcp import (
    McpUpstream,
    UpstreamError,
    UpstreamSpec,
    UpstreamTimeout,
    UpstreamTimings,
    UpstreamUnavailable,
)
from adapters.mcp_http import Credential
from adapters.mcp_relay import OWN_CAPABILITIES
from tests.support.inspecting import Recorder
from tests.support.mcp_client_side import KEY, StubRelay, connected
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for_async

# `ctx.info`: per-request logging is still how a 2026-07-28 tool logs to its caller.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


@dataclass
class Box:
    hanging: threading.Event = field(default_factory=threading.Event)  # set in the server's thread
    cancelled: list[bool] = field(default_factory=list)


def _server(json_response: bool = False) -> tuple[ServerThread, Recorder, Box]:
    server = MCPServer("upstream")
    box = Box()

    @server.tool()
    async def add(a: int, b: int) -> int:
        return a + b

    @server.tool()
    async def slow(steps: int, ctx: Context) -> str:
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
        return f"done after {steps} steps"

    @server.tool()
    async def chatty(ctx: Context) -> str:
        await ctx.info("a line for the caller")
        return "said it"

    @server.tool()
    async def region(
        where: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], n: int
    ) -> str:
        return f"{where}:{n}"

    @server.tool()
    async def whoami(ctx: Context) -> str:
        request = ctx.request_context.request
        headers = getattr(request, "headers", {}) if request is not None else {}
        return json.dumps({k: v for k, v in headers.items()})

    @server.tool()
    async def hang() -> str:
        box.hanging.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            box.cancelled.append(True)
            raise
        return "never"

    @server.tool()
    async def refuse() -> str:
        raise MCPError(-32050, "not today", {"why": "closed"})

    @server.tool()
    async def big(size: int, ctx: Context) -> str:
        await ctx.report_progress(1, 1)  # an SSE answer, if the request has a token
        return "x" * size

    @server.tool()
    async def ask_name(ctx: Context) -> str | types.InputRequiredResult:
        answer = (ctx.input_responses or {}).get("name")
        if isinstance(answer, types.ElicitResult) and answer.content:
            return f"Hello, {answer.content.get('name')}! ({ctx.request_state})"
        question = types.ElicitRequest(
            params=types.ElicitRequestFormParams(
                message="Your name?",
                requested_schema={"type": "object", "properties": {"name": {"type": "string"}}},
            )
        )
        return types.InputRequiredResult(input_requests={"name": question}, request_state="s1")

    recorder = Recorder()

    def build(_url: str) -> Any:
        app = server.streamable_http_app(stateless_http=True, json_response=json_response)
        return recorder.middleware(app)

    return ServerThread(build).start(), recorder, box


def _text(result: types.CallToolResult | types.InputRequiredResult) -> str:
    assert isinstance(result, types.CallToolResult)
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def _posts(recorder: Recorder, tool: str) -> list[Any]:
    return [s for s in recorder.calls() if s.headers.get("mcp-name") == tool]


@pytest.mark.parametrize("json_response", [False, True])
def test_a_call_is_what_the_sdk_sends_and_its_result_is_checked(json_response: bool) -> None:
    server, recorder, _ = _server(json_response)

    async def scenario() -> None:
        async with connected(server.url) as (upstream, used):
            relay = StubRelay(level="debug")
            result = await upstream.call_tool("add", {"a": 2, "b": 3}, credential=None, relay=relay)
            assert _text(result) == "5"
            assert isinstance(result, types.CallToolResult)
            assert result.structured_content == {"result": 5}  # checked against the schema
            (seen,) = _posts(recorder, "add")
            body = json.loads(seen.body)
            assert body["method"] == "tools/call"
            params = body["params"]
            assert params["name"] == "add" and params["arguments"] == {"a": 2, "b": 3}
            meta = params["_meta"]
            assert meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
            assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "switchboard"
            assert meta["io.modelcontextprotocol/clientCapabilities"] == {
                "elicitation": {"form": {}}
            }
            assert meta["io.modelcontextprotocol/logLevel"] == "debug"
            assert "progressToken" not in meta
            headers = seen.headers
            assert headers["mcp-protocol-version"] == "2026-07-28"
            assert headers["mcp-method"] == "tools/call"
            assert headers["accept"] == "application/json, text/event-stream"
            assert headers["content-type"] == "application/json"
            assert headers["x-api-key"] == KEY.value
            assert "authorization" not in headers and "cookie" not in headers
            assert used == [1]
            # Without a relay (the gateway's own call): no question can be
            # answered, no opt-in; apps are relayed.
            await upstream.call_tool("add", {"a": 1, "b": 1}, credential=None)
            meta = json.loads(_posts(recorder, "add")[-1].body)["params"]["_meta"]
            assert meta["io.modelcontextprotocol/clientCapabilities"] == OWN_CAPABILITIES
            assert "io.modelcontextprotocol/logLevel" not in meta

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_progress_logs_and_param_headers() -> None:
    server, recorder, _ = _server()

    async def scenario() -> None:
        async with connected(server.url) as (upstream, used):
            updates: list[tuple[float, float | None, str | None]] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                updates.append((progress, total, message))

            result = await upstream.call_tool(
                "slow", {"steps": 3}, credential=None, progress_callback=on_progress
            )
            assert _text(result) == "done after 3 steps"
            assert updates == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]
            meta = json.loads(_posts(recorder, "slow")[0].body)["params"]["_meta"]
            assert "progressToken" in meta

            relay = StubRelay(level="info")
            assert _text(await upstream.call_tool("chatty", {}, credential=None, relay=relay))
            assert [line.data for line in relay.lines] == ["a line for the caller"]
            quiet = StubRelay(level=None)  # no opt-in: no lines
            await upstream.call_tool("chatty", {}, credential=None, relay=quiet)
            assert quiet.lines == []

            # The server checks Mcp-Param-Region against the body: it must be there.
            result = await upstream.call_tool(
                "region", {"where": "eu-west ü", "n": 1}, credential=None
            )
            assert _text(result) == "eu-west ü:1"
            (seen,) = _posts(recorder, "region")
            assert seen.headers["mcp-param-region"].startswith("=?base64?")
            assert len(used) == 4

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_input_required_round_trip() -> None:
    server, _, _ = _server()

    async def scenario() -> None:
        async with connected(server.url) as (upstream, _used):
            first = await upstream.call_tool("ask_name", {}, credential=None)
            assert isinstance(first, types.InputRequiredResult)
            assert first.request_state and "name" in (first.input_requests or {})
            answer = types.ElicitResult(action="accept", content={"name": "Ada"})
            second = await upstream.call_tool(
                "ask_name",
                {},
                credential=None,
                input_responses={"name": answer},
                request_state=first.request_state,
            )
            assert _text(second) == "Hello, Ada! (s1)"

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_cancelling_the_caller_aborts_the_post() -> None:
    server, _, box = _server()

    async def scenario() -> None:
        async with connected(server.url) as (upstream, _used):
            call = asyncio.create_task(upstream.call_tool("hang", {}, credential=None))
            await wait_for_async(box.hanging.is_set, what="the call at the server")
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await wait_for_async(lambda: box.cancelled, 5, what="the cancellation at the server")
            assert box.cancelled == [True]
            assert upstream.ready  # a cancelled call does not break the session
            with pytest.raises(UpstreamTimeout):
                await upstream.call_tool("hang", {}, credential=None, timeout_seconds=0.3)
            assert _text(await upstream.call_tool("add", {"a": 1, "b": 2}, credential=None)) == "3"

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_errors_caps_and_a_dead_upstream() -> None:
    server, _, _ = _server()

    async def scenario() -> None:
        async with connected(server.url, event_cap=4096) as (upstream, _used):
            with pytest.raises(UpstreamError) as caught:
                await upstream.call_tool("refuse", {}, credential=None)
            assert (caught.value.code, caught.value.message) == (-32050, "not today")
            assert caught.value.data == {"why": "closed"}
            result = await upstream.call_tool("add", {"a": "x"}, credential=None)
            assert isinstance(result, types.CallToolResult) and result.is_error
            assert upstream.ready  # neither broke the session
            updates: list[float] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                updates.append(progress)

            with pytest.raises(UpstreamUnavailable, match="4096"):
                await upstream.call_tool(
                    "big", {"size": 10_000}, credential=None, progress_callback=on_progress
                )
            assert updates == [1.0]  # it was an event stream
        async with connected(server.url, cap=4096) as (upstream, _used):
            server_json, _, _ = _server(json_response=True)
            try:
                json_up = McpUpstream(
                    UpstreamSpec("j", "http", url=server_json.url + "/mcp"),
                    upstream._http,
                    default_credential=upstream._default_credential,
                    on_tools=upstream._on_tools,
                    on_health=upstream._on_health,
                    timings=UpstreamTimings(call_seconds=10),
                    passthrough=upstream._passthrough,
                )
                task = asyncio.create_task(json_up.run())
                assert await json_up.wait_ready(10)
                with pytest.raises(UpstreamUnavailable, match="4096"):
                    await json_up.call_tool("big", {"size": 10_000}, credential=None)
                json_up.stop()
                task.cancel()
                await asyncio.wait({task}, timeout=5)
            finally:
                server_json.stop()
            server.stop()
            with pytest.raises(UpstreamUnavailable):
                await upstream.call_tool("add", {"a": 1, "b": 2}, credential=None)

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_one_credential_header_the_calls_own() -> None:
    server, _, _ = _server()

    async def scenario() -> None:
        async with connected(server.url) as (upstream, _used):
            mine = Credential("Authorization", "Bearer minted-for-this-call")
            seen = json.loads(_text(await upstream.call_tool("whoami", {}, credential=mine)))
            assert seen["authorization"] == "Bearer minted-for-this-call"
            assert "x-api-key" not in seen and "cookie" not in seen
            seen = json.loads(_text(await upstream.call_tool("whoami", {}, credential=None)))
            assert seen["x-api-key"] == KEY.value and "authorization" not in seen

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
