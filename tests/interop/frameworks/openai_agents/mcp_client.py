"""List the tools of a streamable-HTTP MCP server and call one directly, with the OpenAI Agents SDK.

Usage: mcp_client.py URL TOKEN TOOL ARGS_JSON

Uses `agents.mcp.MCPServerStreamableHttp` (params: url + headers {"Authorization": "Bearer TOKEN"});
connect, list_tools, call_tool directly (no agent, no LLM), cleanup.
Prints one JSON line: {"tools": [names], "result": <tool result>, "protocol_version": <negotiated>}.
The result is the tool's structuredContent (unwrapped from {"result": ...}) when present,
else its content blocks (text parsed as JSON when possible). A tool error prints {"error": ...}, exit 1.
Env MCP_CLIENT_MODE=legacy forces the 2025-11-25 initialize handshake. The SDK hard-codes
mode="auto" (probe `server/discover` at 2026-07-28, fall back to initialize), so this patches
the private `agents.mcp.server.create_v2_client` hook (MCP SDK v2 only).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import agents.mcp.server as agents_mcp_server
from agents.mcp import MCPServerStreamableHttp


def _force_mode(mode: str) -> None:
    import mcp

    def create_client(
        transport: Any, *, read_timeout_seconds: float | None, message_handler: Any
    ) -> Any:
        return mcp.Client(
            transport,
            mode=mode,
            cache=None,
            read_timeout_seconds=read_timeout_seconds,
            message_handler=message_handler,
        )

    agents_mcp_server.create_v2_client = create_client  # type: ignore[attr-defined]


def _result_value(result: Any) -> Any:
    structured = getattr(result, "structured_content", None)
    if isinstance(structured, dict) and set(structured) == {"result"}:
        return structured["result"]
    if structured is not None:
        return structured
    values: list[Any] = []
    for block in result.content:
        if getattr(block, "type", None) == "text":
            try:
                values.append(json.loads(block.text))
            except ValueError:
                values.append(block.text)
        else:
            values.append(block.model_dump(mode="json", by_alias=True))
    return values[0] if len(values) == 1 else values


async def run(url: str, token: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    server = MCPServerStreamableHttp(
        {"url": url, "headers": {"Authorization": f"Bearer {token}"}},
        name="interop",
        cache_tools_list=False,
    )
    async with server:  # connect() ... cleanup()
        tools = [t.name for t in await server.list_tools()]
        result = await server.call_tool(tool, args)
        if result.is_error:
            raise RuntimeError(" ".join(getattr(b, "text", "") for b in result.content))
        session = server.session
        version = getattr(session, "protocol_version", None) if session is not None else None
        if version is None and server.server_initialize_result is not None:  # MCP SDK v1
            version = server.server_initialize_result.protocol_version
        return {"tools": tools, "result": _result_value(result), "protocol_version": version}


def main() -> None:
    url, token, tool, args_json = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    if os.environ.get("MCP_CLIENT_MODE", "auto") != "auto":
        _force_mode(os.environ["MCP_CLIENT_MODE"])
    try:
        out = asyncio.run(run(url, token, tool, json.loads(args_json)))
    except Exception as exc:  # report, don't traceback: the caller parses stdout
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
