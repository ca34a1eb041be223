"""The mcp SDK client's private names `adapters.compat_mcp` touches are
where it expects them and do what the adapters rely on: each test fails if
an upgrade of the mcp SDK moves or changes one. A real SDK client and
server (in process, at 2026-07-28)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server import Server, ServerRequestContext
from mcp.shared.dispatcher import CallOptions
from mcp_types import CLIENT_CAPABILITIES_META_KEY, PROTOCOL_VERSION_META_KEY

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


async def test_a_request_is_stamped_as_the_session_stamps_its_own() -> None:
    async with Client(_server([]), mode="2026-07-28") as client:
        await client.list_tools()  # the session learns the tool's header
        data: dict[str, Any] = {
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"region": "eu"}},
        }
        opts: CallOptions = {}
        compat_mcp.stamp(client.session, data, opts)
    meta = data["params"]["_meta"]
    assert meta[PROTOCOL_VERSION_META_KEY] == "2026-07-28"
    assert CLIENT_CAPABILITIES_META_KEY in meta
    headers = {k.lower(): v for k, v in (opts.get("headers") or {}).items()}
    assert headers["mcp-protocol-version"] == "2026-07-28"
    assert headers["mcp-method"] == "tools/call"
    assert headers["mcp-name"] == "echo"
    assert headers["mcp-param-region"] == "eu"
