"""Resources, resource templates, prompts and completions through `/mcp`: the
official `mcp` client, in both revisions, against a gateway federating two real
SDK servers over Streamable HTTP on 127.0.0.1, on both databases.

`docs` is registered with prefixed names, `plain` (the same content) with
``prefix_tools: false``, so the two show both namespacing rules side by side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import MCPError
from mcp.server.mcpserver import MCPServer

from gateway.mcp.errors import DELEGATION_REFUSED, TOOL_QUARANTINED, UPSTREAM_UNAVAILABLE
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import ToolBox, upstream_server
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  docs:
    resources:
      note://secret: {require: [secrets:read]}
      note://by-id/{id}: {require: [notes:browse]}
    prompts:
      greet: {require: [greet:use]}
  plain:
    resources:
      note://secret: {allow: false}
"""
HIDDEN = "Says hello.\u200b\U000e0049\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065"


def content_box() -> ToolBox:
    server = MCPServer("notes")

    @server.resource("note://public", mime_type="text/plain")
    def public() -> str:
        return "a public note"

    @server.resource("note://secret", mime_type="text/plain")
    def secret() -> str:
        return "a secret note"

    @server.resource("note://by-id/{id}", mime_type="text/plain")
    def by_id(id: str) -> str:
        return f"note number {id}"

    @server.prompt(description="Greets someone.")
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    @server.prompt(name="sneaky", description=HIDDEN)
    def sneaky() -> str:
        return "never served"

    # The mcp SDK leaves MCPServer.completion() unannotated (its other decorators are typed).
    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]
    async def complete(
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.Completion:
        names = ["alice", "albert", "bob"]
        return types.Completion(values=[n for n in names if n.startswith(argument.value)])

    return ToolBox(server)


@dataclass
class Deployment:
    gateway: Gateway
    upstreams: list[ServerThread]
    recorders: list[Recorder]

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    async def token(self, sub: str, scopes: str = "") -> str:
        return await anyio.to_thread.run_sync(self.gateway.token, sub, scopes)


@pytest.fixture
def dep(tmp_path: Path, database_url: str | None) -> Iterator[Deployment]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=tmp_path / "policy.yaml")
    started = [upstream_server(content_box()) for _ in range(2)]
    try:
        with gateway.client() as admin:
            for (server, _, _), (name, prefix) in zip(
                started, (("Docs", True), ("Plain", False)), strict=True
            ):
                response = admin.post(
                    "/mcp-servers",
                    json={"name": name, "url": server.url + "/mcp", "prefix_tools": prefix},
                )
                assert response.status_code == 201, response.text
        yield Deployment(gateway, [s for s, _, _ in started], [r for _, r, _ in started])
    finally:
        stop_all(gateway.server, *(server for server, _, _ in started))


async def error_code(call: Awaitable[object]) -> int | None:
    try:
        await call
    except MCPError as exc:
        return exc.code
    return None


def texts(result: types.ReadResourceResult) -> list[str]:
    return [c.text for c in result.contents if isinstance(c, types.TextResourceContents)]


@pytest.mark.parametrize("mode", MODES)
async def test_resources_namespaced_per_user(dep: Deployment, mode: str) -> None:
    token = await dep.token("bob", "secrets:read notes:browse")
    async with mcp_client(dep.url, token, mode) as client:
        listed = {r.uri for r in (await client.list_resources()).resources}
        # `plain` keeps its URIs; the policy denies its secret to everyone.
        assert listed == {
            "switchboard://docs/note://public",
            "switchboard://docs/note://secret",
            "note://public",
        }
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert templates == {"switchboard://docs/note://by-id/{id}", "note://by-id/{id}"}

        read = await client.read_resource("switchboard://docs/note://secret")
        assert texts(read) == ["a secret note"]
        assert read.contents[0].uri == "switchboard://docs/note://secret"
        assert texts(await client.read_resource("note://public")) == ["a public note"]
        # Templates: a plain URI goes to the server whose template it matches.
        assert texts(await client.read_resource("note://by-id/7")) == ["note number 7"]
        assert texts(await client.read_resource("switchboard://docs/note://by-id/8")) == [
            "note number 8"
        ]
        with pytest.raises(MCPError) as denied:
            await client.read_resource("note://secret")
        assert denied.value.code == DELEGATION_REFUSED
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("note://nowhere")
        assert unknown.value.code == types.INVALID_PARAMS
        assert unknown.value.error.data == {"uri": "note://nowhere"}
    # The caller's token never reaches either upstream.
    assert not any(seen.contains(token) for r in dep.recorders for seen in r.calls())


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_and_completions(dep: Deployment, mode: str) -> None:
    async with mcp_client(dep.url, await dep.token("carol", "greet:use"), mode) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        # `sneaky` hides characters in its description: withheld on both servers.
        assert prompts == {"docs__greet", "greet"}
        got = await client.session.get_prompt("docs__greet", {"name": "Ada"})
        message = got.messages[0].content
        assert isinstance(message, types.TextContent) and message.text == "Hello, Ada!"
        with pytest.raises(MCPError) as withheld:
            await client.session.get_prompt("sneaky", {})
        assert withheld.value.code == TOOL_QUARANTINED
        with pytest.raises(MCPError) as unknown:
            await client.session.get_prompt("nope", {})
        assert unknown.value.code == types.INVALID_PARAMS
        assert "Unknown prompt" in unknown.value.message

        done = await client.session.complete(
            types.PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "al"}
        )
        assert done.completion.values == ["alice", "albert"]
        on_template = await client.session.complete(
            types.ResourceTemplateReference(type="ref/resource", uri="note://by-id/{id}"),
            {"name": "id", "value": "b"},
        )
        assert on_template.completion.values == ["bob"]
        # A completion asks the question a read asks: carol may not browse docs' notes.
        docs_template = types.ResourceTemplateReference(
            type="ref/resource", uri="switchboard://docs/note://by-id/{id}"
        )
        with pytest.raises(MCPError) as no_completion:
            await client.session.complete(docs_template, {"name": "id", "value": "b"})
        assert no_completion.value.code == DELEGATION_REFUSED
        with pytest.raises(MCPError) as refused:  # carol may not browse docs' notes by id
            await client.read_resource("switchboard://docs/note://by-id/1")
        assert refused.value.code == DELEGATION_REFUSED


@pytest.mark.parametrize("mode", MODES)
async def test_reads_gets_and_completions_carry_the_callers_trace(
    dep: Deployment, mode: str
) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "tracestate": "congo=1"}
    token = await dep.token("bob", "greet:use")
    async with mcp_client(dep.url, token, mode, headers=traced) as client:
        await client.read_resource("switchboard://docs/note://public")
        await client.session.get_prompt("docs__greet", {"name": "Ann"})
        await client.session.complete(
            types.PromptReference(type="ref/prompt", name="docs__greet"),
            {"name": "name", "value": "al"},
        )
    methods = (b'"resources/read"', b'"prompts/get"', b'"completion/complete"')
    calls = [c for c in dep.recorders[0].calls() if any(m in c.body for m in methods)]
    assert len(calls) == 3
    for call in calls:
        assert call.trace is not None and call.trace[0] == trace
        assert call.headers["tracestate"] == "congo=1"

    def audited() -> set[str]:
        with dep.gateway.client() as admin:
            records = admin.get("/audit", params={"agent": "docs"}).json()["items"]
        assert len(records) == 3
        return {r["trace_id"] for r in records}

    assert await anyio.to_thread.run_sync(audited) == {trace}


@pytest.mark.parametrize("mode", MODES)
async def test_listing_is_what_a_read_or_get_allows(dep: Deployment, mode: str) -> None:
    uris = [
        f"{prefix}note://{name}"
        for prefix in ("switchboard://docs/", "")
        for name in ("public", "secret", "by-id/3")
    ]
    for scopes in ("", "secrets:read", "notes:browse greet:use", "secrets:read notes:browse"):
        async with mcp_client(dep.url, await dep.token("dave", scopes), mode) as client:
            listed = {r.uri for r in (await client.list_resources()).resources}
            templates = [
                t.uri_template for t in (await client.list_resource_templates()).resource_templates
            ]
            for uri in uris:
                visible = uri in listed or any(uri.replace("3", "{id}") == t for t in templates)
                refused = await error_code(client.read_resource(uri))
                assert refused in (None, DELEGATION_REFUSED), (uri, refused)
                assert visible == (refused is None), (scopes, uri)
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            for name in ("docs__greet", "greet"):
                refused = await error_code(client.session.get_prompt(name, {"name": "x"}))
                assert refused in (None, DELEGATION_REFUSED), (name, refused)
                assert (name in prompts) == (refused is None), (scopes, name)


@pytest.mark.parametrize("mode", MODES)
async def test_dead_upstream_is_a_clear_error(dep: Deployment, mode: str) -> None:
    dep.upstreams[0].stop()
    async with mcp_client(dep.url, await dep.token("erin", "secrets:read"), mode) as client:
        with pytest.raises(MCPError) as dead:
            await client.read_resource("switchboard://docs/note://public")
        assert dead.value.code == UPSTREAM_UNAVAILABLE
        assert "MCP server docs" in dead.value.message
        # The other server still answers.
        assert texts(await client.read_resource("note://public")) == ["a public note"]


# The client warns that 2026-07-28 removed `resources/subscribe`: this is a 2025-11-25 session.
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_subscription_is_decided_and_recorded_as_a_read(dep: Deployment) -> None:
    """`resources/subscribe` (2025-11-25 sessions): decided for the caller as a
    read is, and recorded; a refused one is refused in MCP and audited."""
    token = await dep.token("carol", "secrets:read")
    async with mcp_client(dep.url, token, "legacy") as client:
        await client.subscribe_resource("switchboard://docs/note://secret")
        assert await error_code(client.subscribe_resource("note://secret")) == DELEGATION_REFUSED
        assert await error_code(client.subscribe_resource("note://nowhere")) == types.INVALID_PARAMS

    def audit() -> list[dict[str, object]]:
        with dep.gateway.client() as admin:
            found = admin.get("/audit", params={"user": "carol", "limit": 50})
        assert found.status_code == 200, found.text
        items: list[dict[str, object]] = found.json()["items"]
        return items

    records = await anyio.to_thread.run_sync(audit)
    kept = [(r["target"], r["action"], r["outcome"], r["detail"]) for r in records]
    assert ("docs", "note://secret", "ok", "resources/subscribe") in kept
    assert any(a == "plain" and o == "denied" for a, _, o, _ in kept), kept
