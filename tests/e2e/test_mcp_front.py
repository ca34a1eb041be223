"""The gateway's MCP server (`/mcp`) end to end: the official `mcp` client, in
both protocol revisions, against a real gateway federating a real SDK server
over Streamable HTTP on 127.0.0.1, on both databases.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context

from gateway.mcp.errors import DELEGATION_REFUSED, UPSTREAM_UNAVAILABLE
from registry.tls import client_tls
from tests.support.databases import database_beside
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, Seen
from tests.support.mcp_clients import MODES, NameAnswerer, mcp_client
from tests.support.mcp_servers import Hang, ToolBox, upstream_server
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  alpha:
    tools:
      fail:
        allow: false
      whoami:
        require: [secrets:read]
"""
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
SERVER_INFO = "io.modelcontextprotocol/serverInfo"


async def ask_name(ctx: Context) -> str | types.InputRequiredResult:
    """Asks the client for a name, the 2026-07-28 way (a multi round-trip result)."""
    answer = (ctx.input_responses or {}).get("name")
    if isinstance(answer, types.ElicitResult) and answer.content:
        return f"Hello, {answer.content.get('name')}!"
    question = types.ElicitRequest(
        params=types.ElicitRequestFormParams(message="Your name?", requested_schema=NAME_SCHEMA)
    )
    return types.InputRequiredResult(input_requests={"name": question})


@dataclass
class Front:
    gateway: Gateway
    upstream: ServerThread
    recorder: Recorder
    hang: Hang

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    async def token(self, sub: str = "alice", scopes: str = "") -> str:
        # Minting reads the key with asyncio.run(): not on the test's own loop.
        return await anyio.to_thread.run_sync(self.gateway.token, sub, scopes)


@pytest.fixture(scope="module")
def front(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Front]:
    """One deployment for the module's tests that only call its tools: each
    asserts on its own calls, and the catalog they list stays as it is."""
    with _front(tmp_path_factory.mktemp("front"), module_database_url) as deployed:
        yield deployed


@pytest.fixture
def own_front(tmp_path: Path, database_url: str | None) -> Iterator[Front]:
    """A deployment of the test's own: the test stops its upstream or changes
    the catalog that the others list."""
    with _front(tmp_path, database_url) as deployed:
        yield deployed


@contextlib.contextmanager
def _front(
    tmp_path: Path, database_url: str | None, *, stateless: bool = True, **settings: Any
) -> Iterator[Front]:
    box = ToolBox()
    hang = Hang()
    box.server.add_tool(ask_name, description="Greets you by name.")
    box.server.add_tool(hang.hang, name="hang", description="Waits until cancelled.")
    upstream, recorder, _ = upstream_server(box, stateless=stateless)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=policy, **settings)
    try:
        with gateway.client() as admin:
            response = admin.post(
                "/mcp-servers", json={"name": "Alpha", "url": upstream.url + "/mcp"}
            )
            assert response.status_code == 201, response.text
        yield Front(gateway, upstream, recorder, hang)
    finally:
        stop_all(gateway.server, upstream)


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_list_and_call_with_progress(front: Front, mode: str) -> None:
    token = await front.token("alice")
    async with mcp_client(front.url, token, mode) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        # The policy forbids `fail` and `whoami` needs a scope alice lacks: not
        # listed. The gateway's tool search is.
        own = "switchboard__search_tools"
        assert listed == {"alpha__add", "alpha__slow", "alpha__ask_name", "alpha__hang", own}
        added = await client.call_tool("alpha__add", {"a": 2, "b": 3})
        assert added.structured_content == {"result": 5}
        reported: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reported.append(progress)

        slow = await client.call_tool("alpha__slow", {"steps": 3}, progress_callback=on_progress)
        assert text_of(slow) == "done after 3 steps"
        assert reported == [1, 2, 3]
        if mode != "legacy":  # 2026-07-28 results carry the server's stamp: the gateway's
            assert slow.meta is not None and slow.meta[SERVER_INFO]["name"] == "switchboard"
    # The caller's token never reaches the upstream.
    assert not any(seen.contains(token) for seen in front.recorder.calls())


@pytest.mark.parametrize("mode", MODES)
async def test_refusals_are_mcp_errors(front: Front, mode: str) -> None:
    async with mcp_client(front.url, await front.token("alice"), mode) as client:
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("alpha__nope", {})
        assert unknown.value.code == types.INVALID_PARAMS
        assert unknown.value.message == "Unknown tool: alpha__nope"
        with pytest.raises(MCPError) as denied:
            await client.call_tool("alpha__fail", {})
        assert denied.value.code == DELEGATION_REFUSED
        assert "policy forbids" in denied.value.message
        with pytest.raises(MCPError) as missing:
            await client.call_tool("alpha__whoami", {})
        assert missing.value.code == DELEGATION_REFUSED
        assert "secrets:read" in missing.value.message
    # With the scope, the tool is listed and callable.
    token = await front.token("alice", "secrets:read")
    async with mcp_client(front.url, token, mode) as client:
        assert "alpha__whoami" in {t.name for t in (await client.list_tools()).tools}
        assert not (await client.call_tool("alpha__whoami", {})).is_error


@pytest.mark.parametrize("mode", MODES)
async def test_input_required_round_trip(front: Front, mode: str) -> None:
    answer = NameAnswerer()

    token = await front.token("alice")
    async with mcp_client(front.url, token, mode, elicitation_callback=answer) as client:
        result = await client.call_tool("alpha__ask_name", {})
    assert text_of(result) == "Hello, Ada!"
    assert answer.asked == ["Your name?"]


async def test_request_state_is_sealed_and_bound_to_the_caller(front: Front) -> None:
    """A 2026-07-28 client sees the input request; the state it must echo is
    sealed by the gateway and useless to another user."""
    async with mcp_client(front.url, await front.token("alice"), "2026-07-28") as alice:
        first = await alice.session.call_tool("alpha__ask_name", {}, allow_input_required=True)
    assert isinstance(first, types.InputRequiredResult)
    answer: types.InputResponses = {
        "name": types.ElicitResult(action="accept", content={"name": "Eve"})
    }
    async with mcp_client(front.url, await front.token("mallory"), "2026-07-28") as mallory:
        with pytest.raises(MCPError) as refused:
            await mallory.session.call_tool(
                "alpha__ask_name",
                {},
                input_responses=answer,
                request_state=first.request_state or "forged",
                allow_input_required=True,
            )
    assert refused.value.code == types.INVALID_PARAMS


@pytest.mark.parametrize("mode", MODES)
async def test_cancellation_reaches_the_upstream(front: Front, mode: str) -> None:
    front.hang.started.clear()  # the tool is shared: wait for this test's own call
    front.hang.cancelled.clear()
    async with mcp_client(front.url, await front.token("alice"), mode) as client:
        with anyio.move_on_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(client.call_tool, "alpha__hang", {})
                await anyio.to_thread.run_sync(front.hang.started.wait, 10)
                group.cancel_scope.cancel()
    assert await anyio.to_thread.run_sync(front.hang.cancelled.wait, 10)


@pytest.mark.parametrize("mode", MODES)
async def test_dead_upstream_is_a_clear_error(own_front: Front, mode: str) -> None:
    front = own_front
    front.upstream.stop()
    async with mcp_client(front.url, await front.token("alice"), mode) as client:
        with pytest.raises(MCPError) as dead:
            await client.call_tool("alpha__add", {"a": 1, "b": 2})
    assert dead.value.code == UPSTREAM_UNAVAILABLE
    assert "MCP server alpha" in dead.value.message
    front.upstream = upstream_server()[0]  # so the fixture has something to stop


def test_authorization_challenges(front: Front) -> None:
    base = front.gateway.url
    metadata_url = base + "/.well-known/oauth-protected-resource/mcp"
    with httpx.Client(timeout=10, verify=client_tls()) as http:
        anonymous = http.post(front.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert anonymous.status_code == 401
        assert f'resource_metadata="{metadata_url}"' in anonymous.headers["www-authenticate"]
        bad = http.post(front.url, json={}, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert 'error="invalid_token"' in bad.headers["www-authenticate"]
        metadata = http.get(metadata_url).json()
        assert metadata["resource"] == base + "/mcp"
        assert base in metadata["authorization_servers"]
        # A token for another audience is refused; one for the /mcp resource is not.
        elsewhere = front.gateway.mint(audience="https://elsewhere.example", scopes="")
        assert (
            http.post(
                front.url, json={}, headers={"Authorization": f"Bearer {elsewhere}"}
            ).status_code
            == 401
        )
        for_mcp = front.gateway.mint(audience=base + "/mcp", scopes="")
        initialize = _initialize(http, front.url, for_mcp)
        assert initialize.status_code == 200, initialize.text


def _initialize(http: httpx.Client, url: str, token: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
    }
    return http.post(url, json=body, headers=headers)


def test_a_session_belongs_to_its_user(front: Front) -> None:
    alice, bob = front.gateway.token("alice"), front.gateway.token("bob")
    with httpx.Client(timeout=10, verify=client_tls()) as http:
        opened = _initialize(http, front.url, alice)
        session = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        headers = {
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": "2025-11-25",
            "Accept": "application/json, text/event-stream",
        }
        stolen = http.post(
            front.url, json=listing, headers={**headers, "Authorization": f"Bearer {bob}"}
        )
        assert stolen.status_code == 404
        own = http.post(
            front.url, json=listing, headers={**headers, "Authorization": f"Bearer {alice}"}
        )
        assert own.status_code == 200


def test_required_scopes_answer_403(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path / "data", None, mcp_required_scopes=["mcp:use"])
    try:
        with httpx.Client(timeout=10, verify=client_tls()) as http:
            url = gateway.url + "/mcp"
            refused = _initialize(http, url, gateway.token("alice"))
            assert refused.status_code == 403
            challenge = refused.headers["www-authenticate"]
            assert 'error="insufficient_scope"' in challenge and 'scope="mcp:use"' in challenge
            assert _initialize(http, url, gateway.token("alice", "mcp:use")).status_code == 200
    finally:
        gateway.stop()


async def test_unprefixed_servers_keep_their_tool_names(own_front: Front) -> None:
    """`prefix_tools: false` offers a server's tools under their own names; a
    second server with the same tool names gets the prefixed form."""
    front = own_front
    second, third = upstream_server()[0], upstream_server()[0]

    def register() -> None:
        with front.gateway.client() as admin:
            for name, server in (("Plain", second), ("Later", third)):
                response = admin.post(
                    "/mcp-servers",
                    json={"name": name, "url": server.url + "/mcp", "prefix_tools": False},
                )
                assert response.status_code == 201, response.text
                assert response.json()["prefix_tools"] is False

    try:
        await anyio.to_thread.run_sync(register)
        async with mcp_client(front.url, await front.token("alice"), "2026-07-28") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"add", "slow", "later__add", "later__slow"} <= names
            assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {
                "result": 2
            }
    finally:
        second.stop()
        third.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_changed_reaches_connected_clients(own_front: Front, mode: str) -> None:
    """Registering a server tells connected clients, on either revision's channel:
    the 2025-11-25 session's stream, a 2026-07-28 `subscriptions/listen` stream."""
    front = own_front
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    second = upstream_server()[0]

    def register() -> None:
        with front.gateway.client() as admin:
            response = admin.post("/mcp-servers", json={"name": "Beta", "url": second.url + "/mcp"})
            assert response.status_code == 201, response.text

    token = await front.token("alice")
    try:
        async with mcp_client(
            front.url, token, mode, message_handler=on_message, hears_notices=mode == "legacy"
        ) as client:
            before = {t.name for t in (await client.list_tools()).tools}
            assert "beta__add" not in before
            if mode == "legacy":
                caps = client.server_capabilities
                assert caps is not None and caps.tools is not None and caps.tools.list_changed
                await anyio.to_thread.run_sync(register)
                with anyio.fail_after(10):
                    await changed.wait()
            else:
                async with client.listen(tools_list_changed=True) as subscription:
                    await anyio.to_thread.run_sync(register)
                    with anyio.fail_after(10):
                        async for _event in subscription:
                            break
            after = {t.name for t in (await client.list_tools()).tools}
            assert "beta__add" in after
    finally:
        second.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_mcp_stdio_bridge(front: Front, mode: str) -> None:
    """`switchboard mcp-stdio` as a subprocess of the official stdio client."""
    token = await front.token("alice")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "gateway", "mcp-stdio", "--url", front.url],
        env={"SWITCHBOARD_TOKEN": token, "PATH": os.environ.get("PATH", "")},
        cwd=str(Path(__file__).parents[2]),
    )
    reported: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append(progress)

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    async with Client(params, mode=mode, elicitation_callback=answer) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "alpha__add" in names and "alpha__fail" not in names
        slow = await client.call_tool("alpha__slow", {"steps": 2}, progress_callback=on_progress)
        assert text_of(slow) == "done after 2 steps" and reported == [1, 2]
        assert text_of(await client.call_tool("alpha__ask_name", {})) == "Hello, Grace!"


# Trace context ---------------------------------------------------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "00f067aa0ba902b7"
STATE = "congo=t61rcWkgMzE"


@pytest.fixture(scope="module", params=["passthrough", "sdk"])
def traced(
    request: pytest.FixtureRequest,
    front: Front,
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str | None,
) -> Iterator[Front]:
    """ "passthrough": calls go up as the gateway's own POST (`adapters.mcp_passthrough`),
    the module's `front`; "sdk": through the SDK's client, over a server keeping
    2025-11-25 sessions, so a 2025-11-25 caller's calls go over the 2025-11-25 lane."""
    if request.param == "passthrough":
        yield front
        return
    tmp_path = tmp_path_factory.mktemp("traced-sdk")
    with (
        database_beside(module_database_url) as url,
        _front(tmp_path, url, stateless=False, mcp_passthrough=False) as deployed,
    ):
        yield deployed


def _audit_of(gateway: Gateway, user: str, target: str) -> list[dict[str, Any]]:
    with gateway.client() as admin:
        params = {"user": user, "agent": target}
        return list(admin.get("/audit", params=params).json()["items"])


@pytest.mark.parametrize("mode", MODES)
async def test_each_call_reaches_the_server_in_its_own_callers_trace(
    traced: Front, mode: str
) -> None:
    """One client session, four calls, each with other trace headers: what reaches
    the server is each call's own trace (for a 2025-11-25 caller, whose calls
    are all served by one session), the one its audit record has."""
    user = f"tracer-{mode}"  # a user of its own: its audit records are its four calls
    token = await traced.token(user)
    cases = {
        "caller's": {"traceparent": f"00-{TRACE}-{CALLER_SPAN}-00", "tracestate": STATE},
        "next": {"traceparent": f"00-{OTHER_TRACE}-{CALLER_SPAN}-01"},
        "none": {"tracestate": STATE},
        "malformed": {"traceparent": f"00-{TRACE.upper()}-{CALLER_SPAN}-01", "tracestate": STATE},
    }
    seen: dict[str, Seen] = {}
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=client_tls()
    )
    async with (
        http,
        Client(streamable_http_client(traced.url, http_client=http), mode=mode) as client,
    ):
        for case, headers in cases.items():
            for name in ("traceparent", "tracestate"):
                http.headers.pop(name, None)
            http.headers.update(headers)
            traced.recorder.clear()
            added = await client.call_tool("alpha__add", {"a": 2, "b": 3})
            assert added.structured_content == {"result": 5}
            (seen[case],) = [c for c in traced.recorder.calls() if b'"tools/call"' in c.body]
    records = await anyio.to_thread.run_sync(_audit_of, traced.gateway, user, "alpha")
    audited = dict(zip(cases, [r["trace_id"] for r in reversed(records)], strict=True))
    trace = {case: call.trace for case, call in seen.items()}
    assert trace["caller's"] is not None and trace["caller's"][::2] == (TRACE, "00")
    assert trace["caller's"][1] != CALLER_SPAN
    assert seen["caller's"].headers["tracestate"] == STATE
    assert trace["next"] is not None and trace["next"][::2] == (OTHER_TRACE, "01")
    assert audited["caller's"] == TRACE and audited["next"] == OTHER_TRACE
    for case in ("none", "malformed"):  # fresh traces: the audit's, and nothing of the caller's
        fresh = trace[case]
        assert fresh is not None and fresh[0] == audited[case]
        assert fresh[0] not in (TRACE, OTHER_TRACE) and fresh[2] == "01"
        assert not seen[case].contains(TRACE.upper())
    for case in ("next", "none", "malformed"):
        assert "tracestate" not in seen[case].headers
