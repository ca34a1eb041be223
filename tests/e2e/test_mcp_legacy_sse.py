"""An MCP server that speaks only the legacy HTTP+SSE transport (MCP
2024-11-05), federated: the SDK's own SSE server (`MCPServer.sse_app`) under
uvicorn on 127.0.0.1, a real gateway, the official client on `/mcp` in both
revisions, both databases.

`old` is registered with ``transport: sse``; `found` by its URL alone, which
the gateway tells apart by the Streamable HTTP POST it answers with 405
(MCP "Backwards Compatibility") and remembers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import MCPError
from mcp.server.mcpserver import Context
from pydantic import BaseModel

from gateway.mcp.errors import DELEGATION_REFUSED, UPSTREAM_UNAVAILABLE
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, verify_as_downstream
from tests.support.mcp_clients import MODES, NameAnswerer, mcp_client
from tests.support.mcp_servers import ToolBox, legacy_server
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  old:
    tools:
      whoami: {require: [who:read]}
    prompts:
      greet: {require: [greet:use]}
"""


class Name(BaseModel):
    name: str


async def ask(ctx: Context) -> str:
    """Asks its caller mid-call."""
    try:
        answer = await ctx.elicit(message="Your name?", schema=Name)
    except Exception as exc:
        return f"cannot ask: {exc}"
    return f"Hello, {answer.data.name}!" if answer.action == "accept" else answer.action


def legacy_box() -> ToolBox:
    """The test kit's tools, one that asks its caller, a resource and a prompt."""
    box = ToolBox()
    box.server.add_tool(ask, description="Asks the caller's name.")

    @box.server.resource("note://public", mime_type="text/plain")
    def public() -> str:
        return "a public note"

    @box.server.prompt(description="Greets someone.")
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    return box


@dataclass
class Legacy:
    gateway: Gateway
    upstream: ServerThread
    recorder: Recorder

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    async def token(self, sub: str, scopes: str = "") -> str:
        return await anyio.to_thread.run_sync(self.gateway.token, sub, scopes)

    def register(self, **body: Any) -> httpx.Response:
        with self.gateway.client() as admin:
            return admin.post("/mcp-servers", json=body)

    async def audit(self, agent: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self.gateway.client() as admin:
                return list(admin.get("/audit", params={"agent": agent}).json()["items"])

        return await anyio.to_thread.run_sync(read)


@pytest.fixture
def legacy(tmp_path: Path, database_url: str | None) -> Iterator[Legacy]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=tmp_path / "policy.yaml")
    upstream, recorder, _ = legacy_server(legacy_box())
    try:
        deployment = Legacy(gateway, upstream, recorder)
        registered = deployment.register(
            name="Old",
            url=upstream.url + "/sse",
            transport="sse",
            credential={"type": "token_exchange"},
        )
        assert registered.status_code == 201, registered.text
        record = registered.json()
        assert record["transport"] == "sse" and record["health"]["status"] == "healthy"
        yield deployment
    finally:
        stop_all(gateway.server, upstream)


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_and_called_through_mcp(legacy: Legacy, mode: str) -> None:
    token = await legacy.token("alice", "who:read")
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with mcp_client(legacy.url, token, mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"old__add", "old__slow", "old__fail", "old__whoami"} <= names
        added = await client.call_tool("old__add", {"a": 2, "b": 3})
        assert added.structured_content == {"result": 5}
        slow = await client.call_tool("old__slow", {"steps": 3}, progress_callback=on_progress)
        assert text_of(slow) == "done after 3 steps"
        failed = await client.call_tool("old__fail", {})
        assert failed.is_error and text_of(failed) == "Error executing tool fail"
        # The call's own token went with its POST: minted for alice, for this server.
        seen = text_of(await client.call_tool("old__whoami", {}))
    assert steps == [1, 2, 3]
    assert seen.startswith("Bearer ") and seen != f"Bearer {token}"
    claims = await anyio.to_thread.run_sync(
        verify_as_downstream,
        seen.removeprefix("Bearer "),
        legacy.gateway.url,
        legacy.upstream.url + "/sse",
    )
    assert claims["sub"] == "alice"
    # The caller's own token never reached the server, on any request.
    assert all(token not in str(s.headers) for s in legacy.recorder.seen)
    records = await legacy.audit("old")
    assert {(r["action"], r["outcome"], r["subject"]) for r in records} >= {
        ("add", "ok", "alice"),
        ("whoami", "ok", "alice"),
    }


async def test_a_tool_asks_its_caller_over_a_session_of_the_call(legacy: Legacy) -> None:
    answer = NameAnswerer()
    token = await legacy.token("alice")
    async with mcp_client(legacy.url, token, "legacy", elicitation_callback=answer) as client:
        asked = await client.call_tool("old__ask", {})
    assert text_of(asked) == "Hello, Ada!" and answer.asked == ["Your name?"]
    # That session was the call's own, opened with the call's token (minted for alice).
    streams = [s for s in legacy.recorder.seen if s.method == "GET" and s.path == "/sse"]
    assert len(streams) >= 2 and streams[-1].headers.get("authorization", "") != ""
    assert token not in streams[-1].headers["authorization"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_caller_that_cannot_be_asked_is_not(legacy: Legacy, mode: str) -> None:
    """A 2026-07-28 caller, or one that declared no elicitation: the question
    reaches no one (it came on the shared stream, which names no call)."""
    token = await legacy.token("alice")
    async with mcp_client(legacy.url, token, mode) as client:
        refused = text_of(await client.call_tool("old__ask", {}))
    assert refused.startswith("cannot ask:")
    assert "on the HTTP+SSE stream, which serves every call" in refused


@pytest.mark.parametrize("mode", MODES)
async def test_resource_and_prompt(legacy: Legacy, mode: str) -> None:
    token = await legacy.token("bob", "greet:use")
    async with mcp_client(legacy.url, token, mode) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "switchboard://old/note://public" in uris or "note://public" in uris
        read = await client.read_resource("switchboard://old/note://public")
        assert [c.text for c in read.contents if isinstance(c, types.TextResourceContents)] == [
            "a public note"
        ]
        prompt = await client.session.get_prompt("old__greet", {"name": "Ada"})
        message = prompt.messages[0].content
        assert isinstance(message, types.TextContent) and message.text == "Hello, Ada!"


@pytest.mark.parametrize("mode", MODES)
async def test_a_user_without_the_scope_is_refused(legacy: Legacy, mode: str) -> None:
    token = await legacy.token("carol", "")
    async with mcp_client(legacy.url, token, mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "old__add" in names and "old__whoami" not in names
        prompts = {p.name for p in (await client.session.list_prompts()).prompts}
        assert "old__greet" not in prompts
        with pytest.raises(MCPError) as refused:
            await client.call_tool("old__whoami", {})
        assert refused.value.code == DELEGATION_REFUSED
        with pytest.raises(MCPError) as refused_prompt:
            await client.session.get_prompt("old__greet", {"name": "x"})
        assert refused_prompt.value.code == DELEGATION_REFUSED
    # Refused before anything was sent: the server saw no call for carol.
    assert not [s for s in legacy.recorder.seen if b"whoami" in s.body]
    records = await legacy.audit("old")
    assert ("whoami", "deny", "carol") in {
        (r["action"], r["decision"], r["subject"]) for r in records
    }


@pytest.mark.parametrize("mode", MODES)
async def test_dead_upstream_is_a_clear_error(legacy: Legacy, mode: str) -> None:
    legacy.upstream.stop()
    async with mcp_client(legacy.url, await legacy.token("erin"), mode) as client:
        with pytest.raises(MCPError) as dead:
            await client.call_tool("old__add", {"a": 1, "b": 2})
    assert dead.value.code == UPSTREAM_UNAVAILABLE
    assert "MCP server old" in dead.value.message
    records = await legacy.audit("old")
    assert ("add", "erin") in {(r["action"], r["subject"]) for r in records if r["outcome"] != "ok"}


def test_detected_without_the_flag_and_remembered(legacy: Legacy) -> None:
    # A second server at another address: registered by its URL alone.
    other, recorder, _ = legacy_server(legacy_box())
    try:
        registered = legacy.register(name="Found", url=other.url + "/sse")
        assert registered.status_code == 201, registered.text
        assert registered.json()["transport"] == "sse"
        with legacy.gateway.client() as admin:
            stored = admin.get("/mcp-servers/found").json()
        assert stored["transport"] == "sse" and stored["health"]["status"] == "healthy"
        # Streamable HTTP was tried once (answered 405), then never again:
        # the live connection went straight to the SSE stream.
        posted = [s for s in recorder.seen if s.method == "POST" and s.path == "/sse"]
        assert posted and all(s.method == "POST" for s in posted)
        streams = [s for s in recorder.seen if s.method == "GET" and s.path == "/sse"]
        assert len(streams) >= 2  # the probe's and the live connection's
        first_stream = recorder.seen.index(streams[0])
        assert not [
            s for s in recorder.seen[first_stream:] if s.method == "POST" and s.path == "/sse"
        ]
        # Given http explicitly, the same URL is not guessed at: a clear refusal.
        explicit = legacy.register(
            name="Strict", url=other.url + "/sse", transport="http", id="strict"
        )
        assert explicit.status_code == 502
        assert "MCP server strict" in explicit.json()["detail"]
        assert "register it with transport sse" in explicit.json()["detail"]
        with legacy.gateway.client() as admin:
            assert admin.get("/mcp-servers/strict").status_code == 404
    finally:
        other.stop()


@pytest.mark.parametrize(
    "body",
    [
        {"transport": "sse", "command": "python"},
        {"transport": "stdio", "url": "http://127.0.0.1:9/sse"},
        {"transport": "SSE", "url": "http://127.0.0.1:9/sse"},
        {"transport": "websocket", "url": "http://127.0.0.1:9/sse"},
        {"transport": ["sse"], "url": "http://127.0.0.1:9/sse"},
    ],
)
def test_bad_transport_is_refused_and_stores_nothing(legacy: Legacy, body: dict[str, Any]) -> None:
    response = legacy.register(name="Bad", id="bad", **body)
    assert response.status_code == 422, response.text
    with legacy.gateway.client() as admin:
        assert admin.get("/mcp-servers/bad").status_code == 404


def test_a_url_that_is_neither_is_a_clear_error(legacy: Legacy) -> None:
    # The SSE server's message path answers POSTs 400 (no session) and GETs
    # 405: neither transport; the Streamable HTTP failure is what is told.
    response = legacy.register(name="Neither", url=legacy.upstream.url + "/messages/")
    assert response.status_code == 502, response.text
    assert "MCP server neither" in response.json()["detail"]
