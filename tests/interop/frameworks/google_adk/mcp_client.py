"""Google ADK MCP client smoke test.

Usage: mcp_client.py URL TOKEN TOOL ARGS_JSON
McpToolset over streamable HTTP with ``Authorization: Bearer TOKEN``: get_tools(), then run TOOL directly via
``McpTool.run_async(args=..., tool_context=...)`` with a minimal in-memory ToolContext; prints one JSON line
{"tools": [...], "result": ...}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import warnings
from typing import Any

os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault(
    "GOOGLE_API_USE_CLIENT_CERTIFICATE", "false"
)  # else ADK probes Google ADC for mTLS
warnings.filterwarnings("ignore")

from google.adk.agents.invocation_context import InvocationContext  # noqa: E402
from google.adk.sessions import InMemorySessionService  # noqa: E402
from google.adk.tools.mcp_tool import McpToolset, StreamableHTTPConnectionParams  # noqa: E402
from google.adk.tools.tool_context import ToolContext  # noqa: E402


async def minimal_tool_context() -> ToolContext:
    """A ToolContext needs an InvocationContext: session service + session + invocation id (agent optional)."""
    service = InMemorySessionService()
    session = await service.create_session(app_name="mcp_client", user_id="u")
    inv = InvocationContext(session_service=service, invocation_id="inv-1", session=session)
    return ToolContext(inv, function_call_id="call-1")


def _result(res: Any) -> Any:
    """McpTool returns CallToolResult.model_dump(): prefer structuredContent, else the text content."""
    if isinstance(res, dict) and "error" in res and len(res) == 1:
        return res
    if res.get("structuredContent") is not None:
        return res["structuredContent"]
    texts = [c.get("text") for c in res.get("content", []) if c.get("type") == "text"]
    return texts[0] if len(texts) == 1 else texts


async def run(url: str, token: str, tool_name: str, args: dict[str, Any]) -> dict[str, Any]:
    toolset = McpToolset(
        connection_params=StreamableHTTPConnectionParams(
            url=url, headers={"Authorization": f"Bearer {token}"}
        )
    )
    try:
        tools = await toolset.get_tools()
        tool = next((t for t in tools if t.name == tool_name), None)
        if tool is None:
            raise SystemExit(f"tool {tool_name!r} not found; have {[t.name for t in tools]}")
        res = await tool.run_async(args=args, tool_context=await minimal_tool_context())
        return {"tools": [t.name for t in tools], "result": _result(res)}
    finally:
        await toolset.close()


if __name__ == "__main__":
    u, tok, name, a = sys.argv[1:5]
    print(json.dumps(asyncio.run(run(u, tok, name, json.loads(a)))))
