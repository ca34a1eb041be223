"""`/mcp`'s tools/list in pages (MCP cursor pagination): every agent's skills
are tools, so a large registry lists in pages of `mcp_tools_page_size`. The
official `mcp` client, both protocol revisions, over real HTTP; a page size
of 2 here so that a few agents make several pages."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import MCPError

from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.servers import stop_all

AGENTS = ("alpha", "bravo", "charlie")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    worker = worker_agent()
    gateway = start_gateway(tmp_path_factory.mktemp("pages") / "data", None, mcp_tools_page_size=2)
    try:
        card = httpx.get(worker.url + "/.well-known/agent-card.json").json()
        with gateway.client() as admin:
            for agent_id in AGENTS:
                body = {"card": card, "id": agent_id, "resource": f"urn:test:{agent_id}"}
                assert admin.post("/agents", json=body).status_code == 201
        yield gateway
    finally:
        stop_all(gateway.server, worker)


@pytest.mark.parametrize("mode", MODES)
async def test_the_tool_list_comes_in_pages_and_every_tool_once(
    gateway: Gateway, mode: str
) -> None:
    token = await anyio.to_thread.run_sync(gateway.token, "dana", "work:run")
    async with mcp_client(gateway.url + "/mcp", token, mode) as client:
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            listed = await client.list_tools(cursor=cursor, cache_mode="bypass")
            pages.append([t.name for t in listed.tools])
            cursor = listed.next_cursor
            if cursor is None:
                break
        names = [name for page in pages for name in page]
        assert all(len(page) == 2 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 2
        assert len(names) == len(set(names))  # none twice
        for agent_id in AGENTS:
            assert any(name.startswith(f"{agent_id}__") for name in names), names
        assert len(pages) >= 2
        # A cursor the gateway did not give: invalid params, in MCP's error form.
        huge = base64.urlsafe_b64encode(b"o:" + b"9" * 5000).decode()
        for bad in ("nonsense", "bzo=", "o:-1", huge):
            with pytest.raises(MCPError) as refused:
                await client.list_tools(cursor=bad, cache_mode="bypass")
            assert refused.value.error.code == types.INVALID_PARAMS
