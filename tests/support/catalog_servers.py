"""MCP servers (the official SDK, over HTTP) offering the tools of
`bench.search_corpus` (the catalog of `bench.tool_catalog` and more): real-looking tools for tool search to rank. Each tool
answers ``"{name} called with {arguments}"``."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from bench.search_corpus import corpus
from tests.support.mcp_servers import ToolBox, upstream_server
from tests.support.servers import ServerThread


def _tool(name: str, params: dict[str, str]) -> Any:
    """An async function whose signature is ``params`` (strings, optional):
    the SDK reads a tool's input schema off its signature."""
    arguments = ", ".join(f"{p}: str = ''" for p in params)
    values = ", ".join(f"{p!r}: {p}" for p in params)
    source = (
        f"async def {name}({arguments}) -> str:\n"
        f"    return {name!r} + ' called with ' + repr({{{values}}})\n"
    )
    scope: dict[str, Any] = {}
    exec(source, scope)  # noqa: S102 -- our own catalog's identifiers, in a test server
    return scope[name]


def catalog_server(server: str) -> ServerThread:
    """``server``'s tools of the catalog at ``{url}/mcp``."""
    box = ToolBox(MCPServer(server))
    for tool in box.server._tool_manager.list_tools():
        box.server.remove_tool(tool.name)  # the test box's own tools: not this server's
    for name, description, params in corpus()[server]:
        box.server.add_tool(_tool(name, params), name=name, description=description)
    thread, _, _ = upstream_server(box)
    return thread
