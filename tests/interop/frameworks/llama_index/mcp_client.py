"""LlamaIndex MCP client smoke test (llama-index-tools-mcp).

Usage: mcp_client.py URL TOKEN TOOL ARGS_JSON
``BasicMCPClient(URL, headers={"Authorization": "Bearer TOKEN"})`` over streamable HTTP, wrapped in
``McpToolSpec``: ``to_tool_list_async()`` lists the tools as LlamaIndex FunctionTools, then TOOL is run
directly with ``FunctionTool.acall(**args)`` (no LLM). Prints one JSON line
{"tools": [...], "result": ..., "is_error": ..., "protocol_version": ...}.

BasicMCPClient opens a fresh MCP session (initialize + DELETE) for every operation. The protocol version is
the ``MCP-Protocol-Version`` header the mcp SDK stamps on every request after ``initialize`` (read with an
httpx2 request hook on the client's own httpx2 client; BasicMCPClient does not expose the session).
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from typing import Any

warnings.filterwarnings("ignore")

from llama_index.tools.mcp import BasicMCPClient, McpToolSpec  # noqa: E402


def _result(res: Any) -> Any:
    """A CallToolResult: prefer structuredContent, else the text content."""
    if res.structured_content is not None:
        return res.structured_content
    texts = [c.text for c in res.content if getattr(c, "type", None) == "text"]
    return texts[0] if len(texts) == 1 else texts


async def run(url: str, token: str, tool_name: str, args: dict[str, Any]) -> dict[str, Any]:
    client = BasicMCPClient(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    versions: set[str] = set()

    async def note_version(request: Any) -> None:
        if "mcp-protocol-version" in request.headers:
            versions.add(request.headers["mcp-protocol-version"])

    client.http_client.event_hooks["request"].append(note_version)
    try:
        tools = await McpToolSpec(client=client).to_tool_list_async()
        names = [t.metadata.name for t in tools]
        tool = next((t for t in tools if t.metadata.name == tool_name), None)
        if tool is None:
            raise SystemExit(f"tool {tool_name!r} not found; have {names}")
        output = await tool.acall(**args)  # ToolOutput; raw_output is the mcp CallToolResult
        res = output.raw_output
    finally:
        await client.http_client.aclose()
    answer: dict[str, Any] = {"tools": names, "result": _result(res), "is_error": res.is_error}
    if len(versions) == 1:
        answer["protocol_version"] = versions.pop()
    elif versions:
        answer["protocol_versions"] = sorted(versions)
    return answer


if __name__ == "__main__":
    u, tok, name, a = sys.argv[1:5]
    print(json.dumps(asyncio.run(run(u, tok, name, json.loads(a)))))
