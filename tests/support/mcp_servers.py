"""Real MCP servers for the federation tests, built with the official SDK (`MCPServer`).

`upstream_server()` serves one over Streamable HTTP on 127.0.0.1 and records
every request it receives (`tests.support.inspecting.Recorder`), so a test can
check which credential reached it and that the caller's token never did.
`ToolBox` lets a test change a tool's description while the server runs --
the rug pull. `STDIO_SERVER` is a script the gateway launches as a process.
"""

from __future__ import annotations

import base64
import gc
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.inspecting import Recorder
from tests.support.servers import ServerThread

STDIO_SERVER = Path(__file__).with_name("mcp_stdio_server.py")
HIDDEN = "Adds numbers.\u200b\U000e0049\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065"
LONG_NAME = "a_really_long_tool_name_that_goes_on_and_on_and_on_past_the_limit"


async def add(a: int, b: int) -> int:
    return a + b


async def slow(steps: int, ctx: Context) -> str:
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return f"done after {steps} steps"


async def fail() -> str:
    raise ValueError("the tool failed on purpose")


async def whoami(ctx: Context) -> str:
    request = ctx.request_context.request
    headers = getattr(request, "headers", {}) if request is not None else {}
    return str(headers.get("authorization", "") or headers.get("x-api-key", ""))


@dataclass
class ToolBox:
    """The tools one test server offers; `describe()` changes one in place."""

    server: MCPServer = field(default_factory=lambda: MCPServer("upstream"))

    def __post_init__(self) -> None:
        self.server.add_tool(add, description="Add two integers.")
        self.server.add_tool(slow, description="Count to steps, reporting progress.")
        self.server.add_tool(fail, description="Always fails.")
        self.server.add_tool(whoami, description="The credential the server saw.")

    def describe(self, tool: Any, description: str, name: str | None = None) -> None:
        """(Re)register ``tool`` with a new description: what a rug pull looks like."""
        name = name or tool.__name__
        if self.server._tool_manager.get_tool(name) is not None:
            self.server.remove_tool(name)
        self.server.add_tool(tool, name=name, description=description)


OAUTH_CLIENT = ("gateway-client", "client-secret-42")
OAUTH_TOKEN = "cc-token-from-the-upstream-as"


class Hang:
    """A tool that waits until it is cancelled, and says so."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def hang(self) -> str:
        self.started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        return "never cancelled"


async def _token_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """A minimal RFC 6749 §4.4 token endpoint: HTTP Basic, one fixed client."""
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    expected = "Basic " + base64.b64encode(":".join(OAUTH_CLIENT).encode()).decode()
    ok = headers.get("authorization") == expected
    body = (
        {"access_token": OAUTH_TOKEN, "token_type": "Bearer", "expires_in": 300}
        if ok
        else {"error": "invalid_client"}
    )
    await JSONResponse(body, status_code=200 if ok else 401)(scope, receive, send)


def upstream_server(
    box: ToolBox | None = None, *, stateless: bool = True
) -> tuple[ServerThread, Recorder, ToolBox]:
    """``box``'s tools at ``{url}/mcp``, plus an OAuth token endpoint at ``{url}/token``.

    ``stateless`` False keeps 2025-11-25 sessions (``Mcp-Session-Id``), which a
    server needs to ask its caller anything mid-call at that revision."""
    box = box or ToolBox()
    recorder = Recorder()

    def build(_url: str) -> ASGIApp:
        mcp_app = box.server.streamable_http_app(stateless_http=stateless)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/token":
                await _token_endpoint(scope, receive, send)
            else:
                await mcp_app(scope, receive, send)

        return recorder.middleware(app)

    return ServerThread(build).start(), recorder, box


def stdio_command() -> tuple[str, list[str]]:
    return sys.executable, [str(STDIO_SERVER)]


def legacy_server(box: ToolBox | None = None) -> tuple[ServerThread, Recorder, ToolBox]:
    """``box``'s tools over the legacy HTTP+SSE transport only (MCP
    2024-11-05), as the SDK serves it (`MCPServer.sse_app`): the stream at
    ``{url}/sse``, messages POSTed to ``{url}/messages/``. A POST to ``/sse``
    is answered 405, which is what tells a client it is not Streamable HTTP."""
    box = box or ToolBox()
    recorder = Recorder()
    server = _SseServerThread(lambda _url: recorder.middleware(box.server.sse_app())).start()
    return server, recorder, box


class _SseServerThread(ServerThread):
    def stop(self) -> None:
        """An SSE stream never ends by itself, so uvicorn cancels it at shutdown,
        and the SDK's SSE server (mcp 2.3, `mcp.server.sse.connect_sse`) then
        leaves that connection's memory streams unclosed: collected here,
        their ResourceWarning (the server's, not the gateway's) ignored."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            super().stop()
            gc.collect()
