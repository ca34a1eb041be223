"""An MCP server over stdio, for the federation tests (the gateway launches it).

`pid` tells which process answered (a restart gives a new one); `crash` makes
the process die mid-call, as a buggy server would.
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("stdio-upstream")


@server.tool(description="Echo the text back.")
async def echo(text: str) -> str:
    return text


@server.tool(description="The process id of this server.")
async def pid() -> int:
    return os.getpid()


@server.tool(description="Exit the process at once.")
async def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
