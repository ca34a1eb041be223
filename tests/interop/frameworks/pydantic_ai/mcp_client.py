"""List the tools of a streamable-HTTP MCP server and call one directly, with pydantic-ai's MCP client.

Usage: mcp_client.py URL TOKEN TOOL ARGS_JSON

Uses `pydantic_ai.mcp.MCPToolset` (pydantic-ai 2 replaced `MCPServerStreamableHTTP` with it;
it wraps a FastMCP `Client`) with headers {"Authorization": "Bearer TOKEN"}; no agent or LLM.
Prints one JSON line: {"tools": [names], "result": <tool result>, "protocol_version": <negotiated>}.
A tool error prints {"error": ...} with exit code 1.
Env MCP_CLIENT_MODE=legacy forces the 2025-11-25 initialize handshake (default "auto":
probe `server/discover` at 2026-07-28, fall back to initialize); a modern version pins it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from fastmcp.client import Client
from fastmcp.client.transports import StreamableHttpTransport
from pydantic_ai.mcp import MCPToolset


async def run(url: str, token: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    mode = os.environ.get("MCP_CLIENT_MODE", "auto")
    toolset: MCPToolset[None]
    if mode == "auto":
        toolset = MCPToolset(url, headers=headers, tool_error_behavior="error", cache_tools=False)
    else:  # MCPToolset has no `mode` kwarg: hand it a pre-built FastMCP client instead
        client: Client[Any] = Client(StreamableHttpTransport(url, headers=headers), mode=mode)
        toolset = MCPToolset(client, tool_error_behavior="error", cache_tools=False)
    async with toolset:
        tools = [t.name for t in await toolset.list_tools()]
        result = await toolset.direct_call_tool(tool, args)
        return {
            "tools": tools,
            "result": result,
            "protocol_version": toolset.client.protocol_version,
        }


def main() -> None:
    url, token, tool, args_json = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    try:
        out = asyncio.run(run(url, token, tool, json.loads(args_json)))
    except Exception as exc:  # report, don't traceback: the caller parses stdout
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
