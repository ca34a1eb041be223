"""Strands MCP client smoke test.

Usage: mcp_client.py URL TOKEN TOOL ARGS_JSON
Lists tools and calls TOOL directly via strands.tools.mcp.MCPClient over streamable HTTP with
``Authorization: Bearer TOKEN``; prints one JSON line {"tools": [...], "result": ...}.
"""

from __future__ import annotations

import json
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

warnings.filterwarnings("ignore")

from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client  # noqa: E402
from strands.tools.mcp import MCPClient  # noqa: E402


def transport_factory(url: str, token: str) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """mcp 2.x: headers go on an httpx2 client that we own; streamable_http_client takes http_client=."""

    @asynccontextmanager
    async def open_transport() -> AsyncIterator[Any]:
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http_client,
            streamable_http_client(url, http_client=http_client) as streams,
        ):
            yield streams

    return open_transport


def main() -> None:
    url, token, tool, args_json = sys.argv[1:5]
    with MCPClient(transport_factory(url, token)) as client:
        tools = [t.tool_name for t in client.list_tools_sync()]
        res = client.call_tool_sync(str(uuid.uuid4()), tool, json.loads(args_json))
    result: Any = res.get("structuredContent")
    if result is None:
        texts = [c["text"] for c in res.get("content", []) if "text" in c]
        result = texts[0] if len(texts) == 1 else texts
    print(json.dumps({"tools": tools, "result": result, "status": res.get("status")}))


if __name__ == "__main__":
    main()
