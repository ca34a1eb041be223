"""The mcp SDK client's private names `adapters.compat_mcp` touches are
where it expects them and do what the adapters rely on: each test fails if
an upgrade of the mcp SDK moves or changes one. A real SDK client and
server (in process, at 2026-07-28)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server import Server, ServerRequestContext
from mcp_types import CLIENT_CAPABILITIES_META_KEY

from adapters import compat_mcp

TOOL = types.Tool(
    name="echo",
    input_schema={
        "type": "object",
        "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
    },
)


def _server(seen: list[dict[str, Any]]) -> Server[Any]:
    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        seen.append(dict(ctx.meta or {}))
        return types.ListToolsResult(tools=[TOOL])

    return Server("compat-test", on_list_tools=on_list_tools)


async def test_an_amended_stamp_is_what_the_server_receives() -> None:
    seen: list[dict[str, Any]] = []
    ours: dict[str, Any] = {"extensions": {"example/ours": {}}}

    def amend(data: dict[str, Any]) -> None:
        data["params"]["_meta"][CLIENT_CAPABILITIES_META_KEY] = ours

    async with Client(_server(seen), mode="2026-07-28") as client:
        assert compat_mcp.amend_stamp(client.session, amend)
        await client.list_tools()
    assert seen[-1][CLIENT_CAPABILITIES_META_KEY] == ours


async def test_amended_raw_results_are_what_the_session_checks_and_parses() -> None:
    amended: list[str] = []

    def amend(method: str, raw: Any) -> Any:
        amended.append(method)
        return {**raw, "tools": [*raw["tools"], {**raw["tools"][0], "name": "added"}]}

    async with Client(_server([]), mode="2026-07-28") as client:
        assert compat_mcp.amend_raw_results(client.session, amend)
        assert compat_mcp.amend_raw_results(client.session, amend)  # once per session
        listed = await client.session.list_tools()
    assert amended == ["tools/list"]
    assert [tool.name for tool in listed.tools] == ["echo", "added"]
