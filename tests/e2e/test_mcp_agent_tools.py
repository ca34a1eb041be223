"""An A2A agent's skills called as MCP tools: the official `mcp` client (both
protocol revisions) at the gateway's `/mcp`, an official-SDK A2A agent behind
it, over real HTTP on 127.0.0.1, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import MCPError

from gateway.mcp.errors import DELEGATION_REFUSED
from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, verify_as_downstream
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  worker:
    skills:
      work:
        require: [work:run]
"""
TOOL = "worker__work"


@dataclass
class Setup:
    gateway: Gateway
    worker: ServerThread
    seen: Recorder

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    async def token(self, sub: str, scopes: str = "") -> str:
        # Minting reads the key with asyncio.run(): not on the test's own loop.
        return await anyio.to_thread.run_sync(self.gateway.token, sub, scopes)


def register_worker(gateway: Gateway, worker: ServerThread) -> None:
    with gateway.client() as admin:
        if admin.get("/agents/worker").status_code == 200:
            return
        body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
        assert admin.post("/agents", json=body).status_code == 201


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    """One deployment for the module: the tests count the worker's calls from
    where they start, and the one that removes the worker registers it again."""
    tmp_path = tmp_path_factory.mktemp("agent-tools")
    seen = Recorder()
    worker = worker_agent(seen)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", module_database_url, policy_file=policy)
    try:
        register_worker(gateway, worker)
        yield Setup(gateway, worker, seen)
    finally:
        stop_all(gateway.server, worker)


def text_of(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_a_skill_is_a_tool_that_delegates_with_the_users_minted_token(
    setup: Setup, mode: str
) -> None:
    token = await setup.token("alice", "work:run")
    async with mcp_client(setup.url, token, mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert TOOL in tools and "A2A agent worker" in (tools[TOOL].description or "")
        result = await client.call_tool(TOOL, {"message": "task hello"})
    assert not result.is_error, result
    assert text_of(result) == "done: hello"
    assert result.structured_content is not None
    assert result.structured_content["state"] == "TASK_STATE_COMPLETED"
    # The agent saw a token minted for it, with alice as subject, never hers.
    calls = setup.seen.calls()
    assert calls and not any(call.contains(token) for call in calls)
    claims = verify_as_downstream(calls[-1].bearer or "", setup.gateway.url, setup.worker.url + "/")
    assert claims["sub"] == "alice" and "work:run" in claims["scope"].split()


@pytest.mark.parametrize("mode", MODES)
async def test_a_long_task_reports_progress(setup: Setup, mode: str) -> None:
    token = await setup.token("alice", "work:run")
    notes: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message)

    async with mcp_client(setup.url, token, mode) as client:
        result = await client.call_tool(
            TOOL, {"message": "slow 0.5"}, progress_callback=on_progress
        )
    assert text_of(result) == "done: 0.5"
    assert notes and all(n and n.startswith("TASK_STATE_") for n in notes)


@pytest.mark.parametrize("mode", MODES)
async def test_input_required_surfaces_and_the_task_continues(setup: Setup, mode: str) -> None:
    token = await setup.token("alice", "work:run")
    async with mcp_client(setup.url, token, mode) as client:
        asked = await client.call_tool(TOOL, {"message": "ask"})
        assert not asked.is_error
        assert asked.structured_content is not None
        assert asked.structured_content["state"] == "TASK_STATE_INPUT_REQUIRED"
        assert "which warehouse?" in text_of(asked)
        task_id = asked.structured_content["taskId"]
        answered = await client.call_tool(TOOL, {"message": "north", "taskId": task_id})
    assert text_of(answered) == "got: north"
    # Bob cannot continue Alice's task: the front door's ownership check.
    bob = await setup.token("bob", "work:run")
    async with mcp_client(setup.url, bob, mode) as client:
        stolen = await client.call_tool(TOOL, {"message": "south", "taskId": task_id})
    assert stolen.is_error and "not found" in text_of(stolen)


@pytest.mark.parametrize("mode", MODES)
async def test_listing_and_calling_ask_the_same_question(setup: Setup, mode: str) -> None:
    token = await setup.token("carol")  # no work:run
    async with mcp_client(setup.url, token, mode) as client:
        assert TOOL not in {t.name for t in (await client.list_tools()).tools}
        before = len(setup.seen.calls())
        with pytest.raises(MCPError) as refused:
            await client.call_tool(TOOL, {"message": "task x"})
        assert refused.value.error.code == DELEGATION_REFUSED
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("worker__nope", {"message": "x"})
        assert unknown.value.error.code == types.INVALID_PARAMS
    assert len(setup.seen.calls()) == before


@pytest.mark.parametrize("mode", MODES)
async def test_bad_arguments_are_a_tool_error_and_reach_nobody(setup: Setup, mode: str) -> None:
    token = await setup.token("alice", "work:run")
    async with mcp_client(setup.url, token, mode) as client:
        before = len(setup.seen.calls())
        result = await client.call_tool(TOOL, {})
    assert result.is_error and "give a message" in text_of(result)
    assert len(setup.seen.calls()) == before


@pytest.mark.parametrize("mode", MODES)
async def test_removing_an_agent_tells_connected_clients(setup: Setup, mode: str) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    def remove() -> None:
        with setup.gateway.client() as admin:
            assert admin.delete("/agents/worker").status_code == 204

    token = await setup.token("alice", "work:run")
    try:
        async with mcp_client(
            setup.url, token, mode, message_handler=on_message, hears_notices=mode == "legacy"
        ) as client:
            assert TOOL in {t.name for t in (await client.list_tools()).tools}
            if mode == "legacy":
                await anyio.to_thread.run_sync(remove)
                with anyio.fail_after(10):
                    await changed.wait()
            else:
                async with client.listen(tools_list_changed=True) as subscription:
                    await anyio.to_thread.run_sync(remove)
                    with anyio.fail_after(10):
                        async for _event in subscription:
                            break
            assert TOOL not in {t.name for t in (await client.list_tools()).tools}
    finally:  # the module's other tests use the worker
        await anyio.to_thread.run_sync(register_worker, setup.gateway, setup.worker)
