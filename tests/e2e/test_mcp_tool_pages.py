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

from registry.tls import client_tls
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
        card = httpx.get(worker.url + "/.well-known/agent-card.json", verify=client_tls()).json()
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


async def test_a_listing_sees_a_registration_made_just_before_it(gateway: Gateway) -> None:
    """Later pages may reuse the registry snapshot found current within a second
    (`gateway.mcp.agent_tools.CONTINUATION_SECONDS`); a listing's first page
    never does, so a change made before a listing is in it, however soon."""
    token = await anyio.to_thread.run_sync(gateway.token, "dana", "work:run")
    worker = worker_agent()
    card_url = worker.url + "/.well-known/agent-card.json"
    card = await anyio.to_thread.run_sync(lambda: httpx.get(card_url, verify=client_tls()).json())

    def admin(method: str, path: str, body: dict[str, object] | None = None) -> int:
        with gateway.client() as client:
            return client.request(method, path, json=body).status_code

    async with mcp_client(gateway.url + "/mcp", token, MODES[0]) as client:

        async def listed() -> list[str]:
            names: list[str] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                names += [t.name for t in page.tools]
                if (cursor := page.next_cursor) is None:
                    return names

        try:
            assert not any(n.startswith("delta__") for n in await listed())
            body = {"card": card, "id": "delta", "resource": "urn:test:delta"}
            assert await anyio.to_thread.run_sync(admin, "POST", "/agents", body) == 201
            assert any(n.startswith("delta__") for n in await listed())
            assert await anyio.to_thread.run_sync(admin, "DELETE", "/agents/delta") == 204
            assert not any(n.startswith("delta__") for n in await listed())
        finally:
            await anyio.to_thread.run_sync(admin, "DELETE", "/agents/delta")
            stop_all(worker)
