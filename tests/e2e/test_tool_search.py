"""Tool search (`switchboard__search_tools`) end to end: a real gateway on
both databases, three MCP servers on the official SDK offering the
catalog's real-looking tools, and the `mcp` SDK's client at both revisions.

What must hold: the right tool comes back in the top five for the labelled
queries, with its input schema, and first for issue 54's failing examples; a tool the caller may not call is never
found; a virtual server in `only` mode lists just search and call, finds
only its own tools and calls them as themselves (outside the set: a name
that does not exist); bad arguments are tool errors; a set without search
has no such tool; every search is audited (who, where, how many found),
with its query unless queries are private.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import MCPError
from mcp_types import INVALID_PARAMS

from bench.tool_catalog import QUERIES
from registry.mcp_names import skill_tool_name
from tests.support.a2a_agents import worker_agent
from tests.support.catalog_servers import catalog_server
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.servers import ServerThread, stop_all

SERVERS = ("inventory", "billing", "shipping")
# Those of issue 54's failing examples: a time-zone tool beside a customs
# declaration whose parameter says "what is inside"; merge and deploy tools
# beside HR's and procurement's approvals.
EXAMPLES = ("clock", "hr", "github", "cicd", "procurement")
SEARCH, CALL = "switchboard__search_tools", "switchboard__call_tool"
# The refund tool is refused to everyone: search must never offer it.
POLICY = """\
agents:
  billing:
    tools:
      issue_refund:
        allow: false
"""
SHOP = {
    "name": "shop",
    "title": "Shop floor",
    "select": {"servers": ["inventory", "shipping"]},
    "tool_search": "only",
}


@dataclass
class Setup:
    gateway: Gateway
    servers: list[ServerThread] = field(default_factory=list)

    def admin(self) -> httpx.Client:
        return self.gateway.client()


def shop(name: str) -> dict[str, Any]:
    """SHOP under a name of the test's own (the module's tests share a gateway)."""
    return {**SHOP, "name": name}


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    """One gateway and its three servers for the module's tests: each test
    reads, or creates sets of names of its own."""
    tmp_path = tmp_path_factory.mktemp("tool-search")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", module_database_url, policy_file=policy)
    running = Setup(gateway)
    try:
        for name in (*SERVERS, *EXAMPLES):
            server = catalog_server(name)
            running.servers.append(server)
            with running.admin() as admin:
                added = admin.post("/mcp-servers", json={"name": name, "url": server.url + "/mcp"})
                assert added.status_code == 201, added.text
        yield running
    finally:
        stop_all(*running.servers)
        gateway.server.stop()


def run_client(setup: Setup, path: str, mode: str, steps: Any) -> Any:
    token = setup.gateway.token("alice")

    async def run() -> Any:
        async with mcp_client(setup.gateway.url + path, token, mode) as client:
            return await steps(client)

    return setup.gateway.server.run(run())


def found(result: Any) -> list[dict[str, Any]]:
    assert not result.is_error, result.content
    tools: list[dict[str, Any]] = result.structured_content["tools"]
    assert json.loads(result.content[0].text) == {"tools": tools}
    return tools


@pytest.mark.parametrize("mode", MODES)
def test_search_finds_the_right_tool_among_the_callers_own(setup: Setup, mode: str) -> None:
    labelled = [
        (q, right)
        for q, right in QUERIES
        if right.split("__")[0] in SERVERS and right != "billing__issue_refund"
    ]
    assert len(labelled) >= 5

    async def steps(client: Any) -> Any:
        listed = [t.name for t in (await client.list_tools()).tools]
        answers = {q: found(await client.call_tool(SEARCH, {"query": q})) for q, _ in labelled}
        refund = found(await client.call_tool(SEARCH, {"query": "issue refund", "limit": 20}))
        return listed, answers, refund

    listed, answers, refund = run_client(setup, "/mcp", mode, steps)
    assert listed[0] == SEARCH  # first: a paging client meets it at once
    assert "billing__issue_refund" not in listed
    hits = sum(right in [t["name"] for t in answers[q]] for q, right in labelled)
    # bench.tool_search: recall@5 0.90 (SQLite), 0.88 (PostgreSQL) overall.
    assert hits >= len(labelled) - 2, answers
    for tools in answers.values():
        assert len(tools) <= 5  # a query sharing no word with any tool finds none
        for tool in tools:
            assert tool["inputSchema"]["type"] == "object"
            assert tool["name"] in listed and tool["name"] not in (SEARCH, CALL)
    # Found by its words everywhere else, but the caller may not call it.
    assert refund and "billing__issue_refund" not in [t["name"] for t in refund]


@pytest.mark.parametrize("mode", MODES)
def test_a_set_in_only_mode_finds_and_calls_its_own_tools(setup: Setup, mode: str) -> None:
    with setup.admin() as admin:
        created = admin.post("/mcp-sets", json=shop(f"shop-{mode}"))
        assert created.status_code == 201, created.text
        assert created.json()["tool_search"] == "only"

    async def steps(client: Any) -> Any:
        listed = {t.name for t in (await client.list_tools()).tools}
        stock = found(await client.call_tool(SEARCH, {"query": "units in the warehouse"}))
        invoices = found(await client.call_tool(SEARCH, {"query": "create invoice customer"}))
        called = await client.call_tool(
            CALL, {"name": "inventory__check_stock", "arguments": {"sku": "A-1"}}
        )
        outside: dict[str, Any] = {}
        for name in ("billing__create_invoice", "billing__issue_refund", SEARCH):
            try:
                outside[name] = await client.call_tool(CALL, {"name": name, "arguments": {}})
            except Exception as exc:  # the SDK raises the JSON-RPC error
                outside[name] = str(exc)
        return listed, stock, invoices, called, outside

    listed, stock, invoices, called, outside = run_client(setup, f"/mcp/shop-{mode}", mode, steps)
    assert listed == {SEARCH, CALL}
    assert "inventory__check_stock" in [t["name"] for t in stock]
    assert all(t["name"].split("__")[0] in ("inventory", "shipping") for t in stock + invoices)
    assert not called.is_error, called.content
    assert "check_stock called with {'sku': 'A-1', 'warehouse': ''}" in called.content[0].text
    for name, answer in outside.items():
        assert isinstance(answer, str) and "unknown tool" in answer.lower(), (name, answer)


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"query": ""},
        {"query": "x" * 501},
        {"query": 5},
        {"query": "stock", "limit": 0},
        {"query": "stock", "limit": 21},
        {"query": "stock", "limit": "5"},
        {"query": "stock", "limit": True},
        {"query": "stock", "extra": 1},
    ],
)
def test_bad_search_arguments_are_a_tool_error(setup: Setup, arguments: dict[str, Any]) -> None:
    async def steps(client: Any) -> Any:
        try:
            return await client.call_tool(SEARCH, arguments)
        except MCPError as exc:  # refused against the input schema: invalid params
            return exc.code

    answer = run_client(setup, "/mcp", "2026-07-28", steps)
    if isinstance(answer, int):
        assert answer == INVALID_PARAMS
    else:
        assert answer.is_error, answer
        assert SEARCH in answer.content[0].text


def test_bad_call_tool_arguments_are_a_tool_error(setup: Setup) -> None:
    with setup.admin() as admin:
        assert admin.post("/mcp-sets", json=shop("shop-bad-calls")).status_code == 201

    async def steps(client: Any) -> list[Any]:
        answers = []
        for arguments in ({}, {"name": ""}, {"name": 3}, {"name": "x", "arguments": []}):
            try:
                answers.append(await client.call_tool(CALL, arguments))
            except MCPError as exc:
                answers.append(exc.code)
        return answers

    for answer in run_client(setup, "/mcp/shop-bad-calls", "legacy", steps):
        if isinstance(answer, int):
            assert answer == INVALID_PARAMS
        else:
            assert answer.is_error and CALL in answer.content[0].text, answer


def test_a_set_without_search_has_no_search_tool(setup: Setup) -> None:
    with setup.admin() as admin:
        plain = {**SHOP, "name": "plain", "tool_search": "off"}
        assert admin.post("/mcp-sets", json=plain).status_code == 201
        bad = {**SHOP, "name": "odd", "tool_search": "sometimes"}
        refused = admin.post("/mcp-sets", json=bad)
        assert refused.status_code == 422, refused.text
        assert admin.get("/mcp-sets/odd").status_code == 404

    async def steps(client: Any) -> Any:
        listed = {t.name for t in (await client.list_tools()).tools}
        try:
            answer: Any = await client.call_tool(SEARCH, {"query": "stock"})
        except Exception as exc:
            answer = str(exc)
        return listed, answer

    listed, answer = run_client(setup, "/mcp/plain", "2026-07-28", steps)
    assert SEARCH not in listed and CALL not in listed
    assert "inventory__check_stock" in listed
    assert isinstance(answer, str) and "unknown tool" in answer.lower()


def test_a_set_with_search_on_finds_only_what_the_policy_allows_in_it(setup: Setup) -> None:
    money = {"name": "money", "title": "Money", "select": {"servers": ["billing"]}}
    with setup.admin() as admin:
        assert admin.post("/mcp-sets", json={**money, "tool_search": "on"}).status_code == 201

    async def steps(client: Any) -> Any:
        listed = [t.name for t in (await client.list_tools()).tools]
        refund = found(await client.call_tool(SEARCH, {"query": "refund the invoice", "limit": 20}))
        return listed, refund

    listed, refund = run_client(setup, "/mcp/money", "legacy", steps)
    assert listed[0] == SEARCH and CALL not in listed
    assert "billing__create_invoice" in listed and "billing__issue_refund" not in listed
    names = [t["name"] for t in refund]
    assert names and "billing__issue_refund" not in names
    assert all(name.startswith("billing__") for name in names)


@pytest.mark.parametrize("mode", MODES)
def test_the_failing_examples_of_issue_54_rank_right(setup: Setup, mode: str) -> None:
    async def steps(client: Any) -> Any:
        time_zone = await client.call_tool(SEARCH, {"query": "what time is 9am Pacific in Berlin"})
        ship = await client.call_tool(SEARCH, {"query": "ship the approved PR"})
        return found(time_zone), found(ship)

    time_zone, ship = run_client(setup, "/mcp", mode, steps)
    # A customs declaration ("what is inside") shares no telling word with it.
    assert time_zone[0]["name"] == "clock__convert_time_zone", time_zone
    assert "shipping__customs_declaration" not in [t["name"] for t in time_zone]
    # Merging (or deploying) the PR, not approving someone's time off.
    assert ship[0]["name"] in ("github__merge_pull_request", "cicd__deploy_release"), ship
    assert not ship[0]["name"].startswith(("hr__", "procurement__"))


def searches_recorded(gateway: Gateway, where: str) -> list[dict[str, Any]]:
    with gateway.client() as admin:
        answer = admin.get("/audit", params={"agent": where, "limit": 100})
        assert answer.status_code == 200, answer.text
    return [r for r in answer.json()["items"] if r["event"] == "mcp.search"]


def test_every_search_is_audited_with_its_query(setup: Setup) -> None:
    with setup.admin() as admin:
        assert admin.post("/mcp-sets", json=shop("shop-audited")).status_code == 201

    async def on_mcp(client: Any) -> Any:
        await client.call_tool(SEARCH, {"query": "units in the warehouse, audited"})
        return await client.call_tool(SEARCH, {"query": "stock", "limit": 99})

    async def on_set(client: Any) -> Any:
        return found(await client.call_tool(SEARCH, {"query": "track my parcel, audited"}))

    refused = run_client(setup, "/mcp", "legacy", on_mcp)
    assert refused.is_error
    in_set = run_client(setup, "/mcp/shop-audited", "2026-07-28", on_set)
    records = searches_recorded(setup.gateway, "/mcp")
    mine = [r for r in records if "audited" in (r["detail"] or "")]
    assert len(mine) == 1
    [record] = mine
    assert record["subject"] == "alice" and record["decision"] == "allow"
    assert record["action"] == SEARCH and record["outcome"] == "ok"
    assert record["detail"].startswith("5 found; query: 'units in the warehouse, audited'")
    assert len(record["trace_id"]) == 32
    bad = [r for r in records if r["decision"] == "deny"]
    assert bad and bad[0]["outcome"] == "invalid_arguments" and "limit" in bad[0]["detail"]
    [set_record] = searches_recorded(setup.gateway, "/mcp/shop-audited")
    assert set_record["detail"].startswith(f"{len(in_set)} found; query: 'track my parcel")


def test_private_queries_are_audited_without_their_text(
    tmp_path: Path, database_url: str | None
) -> None:
    gateway = start_gateway(tmp_path / "data", database_url, mcp_tool_search_private_queries=True)
    server = catalog_server("clock")
    try:
        with gateway.client() as admin:
            added = admin.post("/mcp-servers", json={"name": "clock", "url": server.url + "/mcp"})
            assert added.status_code == 201, added.text

        async def steps(client: Any) -> Any:
            return found(await client.call_tool(SEARCH, {"query": "my secret 9am Pacific time"}))

        answer = run_client(Setup(gateway, [server]), "/mcp", "2026-07-28", steps)
        assert answer[0]["name"] == "clock__convert_time_zone"
        [record] = searches_recorded(gateway, "/mcp")
        assert record["detail"] == f"{len(answer)} found"
        assert "secret" not in json.dumps(record) and "Pacific" not in json.dumps(record)
    finally:
        stop_all(server)
        gateway.server.stop()


def test_search_off_on_mcp(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path / "data", None, mcp_tool_search=False)
    server = catalog_server("inventory")
    try:
        with gateway.client() as admin:
            added = admin.post(
                "/mcp-servers", json={"name": "inventory", "url": server.url + "/mcp"}
            )
            assert added.status_code == 201, added.text
        setup = Setup(gateway, [server])

        async def steps(client: Any) -> Any:
            listed = {t.name for t in (await client.list_tools()).tools}
            try:
                await client.call_tool(SEARCH, {"query": "stock"})
            except MCPError as exc:
                return listed, exc.code
            return listed, None

        listed, code = run_client(setup, "/mcp", "2026-07-28", steps)
        assert SEARCH not in listed and "inventory__check_stock" in listed
        assert code == INVALID_PARAMS  # unknown tool
    finally:
        stop_all(server)
        gateway.server.stop()


def test_a_server_registered_then_removed_is_found_then_not(setup: Setup) -> None:
    """The index follows the catalog as it changes: a server registered after
    the first searches is found by the next one, and once removed, not."""
    query, right = "schedule a meeting with the design team next week", "calendar__create_event"

    async def steps(client: Any) -> Any:
        return [t["name"] for t in found(await client.call_tool(SEARCH, {"query": query}))]

    assert right not in run_client(setup, "/mcp", "2026-07-28", steps)
    server = catalog_server("calendar")
    try:
        with setup.admin() as admin:
            added = admin.post(
                "/mcp-servers", json={"name": "calendar", "url": server.url + "/mcp"}
            )
            assert added.status_code == 201, added.text
            assert right in run_client(setup, "/mcp", "2026-07-28", steps)
            assert admin.delete("/mcp-servers/calendar").status_code == 204
        assert not any(
            name.startswith("calendar__") for name in run_client(setup, "/mcp", "2026-07-28", steps)
        )
    finally:
        stop_all(server)


def test_an_agent_registered_then_removed_has_its_skill_found_then_not(setup: Setup) -> None:
    """A search may answer from the registry as found within the last second
    (`CONTINUATION_SECONDS`), but a registration or removal through this
    gateway's API ends that at once: the very next search sees it."""
    query, right = "does work slowly", skill_tool_name("searchworker", "work")

    async def steps(client: Any) -> Any:
        return [t["name"] for t in found(await client.call_tool(SEARCH, {"query": query}))]

    assert right not in run_client(setup, "/mcp", "2026-07-28", steps)
    worker = worker_agent()
    try:
        card = worker.url + "/.well-known/agent-card.json"
        with setup.admin() as admin:
            added = admin.post("/agents", json={"card_url": card, "id": "searchworker"})
            assert added.status_code == 201, added.text
            assert right in run_client(setup, "/mcp", "2026-07-28", steps)
            assert admin.delete("/agents/searchworker").status_code == 204
        assert right not in run_client(setup, "/mcp", "2026-07-28", steps)
    finally:
        stop_all(worker)
