"""A mock MCP server for unit tests, in the spirit of `httpx.MockTransport`.

`MockMcpServer` answers MCP over Streamable HTTP as an httpx2 handler (the
`mcp` SDK's client transport takes an `httpx2` client): each POST's JSON-RPC
request gets an ``application/json`` answer, which MCP 2025-11-25
(basic/transports, "Sending Messages to the Server") allows in place of an
SSE stream; a notification gets 202; the optional GET stream is refused
with 405, as the same section lets a server do. So the SDK's own client --
and `adapters.mcp.McpUpstream`, given `MockMcpServer.http` as its HTTP
factory -- talks to it with no server and no socket.

It speaks either era the SDK's ``mode="auto"`` connect probes for: a
2025-11-25 server refuses ``server/discover`` (-32601) and takes the
``initialize`` handshake, handing out a session id; a 2026-07-28 server
answers ``server/discover`` and keeps no session.

Each request is kept (`MockMcpServer.seen`: method, params, headers -- what
a test asserts the gateway sent). Tools are given as definitions with a
function each (`MockMcpServer.tool`); answers to one method are scripted in
order (`MockMcpServer.then`, ``tools/call`` by default) to stand for a
server that fails (an HTTP status, a JSON-RPC error, no connection, a read
that times out).

For unit tests of one piece (the delegation core, the MCP adapter) only:
end-to-end tests keep real SDK servers on 127.0.0.1 (`tests.support.mcp_servers`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx2
from mcp_types.version import LATEST_MODERN_VERSION

from adapters.mcp_http import UpstreamAuth

URL = "http://tools.test/mcp"
LEGACY_VERSION: Final = "2025-11-25"
# JSON-RPC 2.0 §5.1.
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

Era = Literal["2025-11-25", "2026-07-28"]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    params: dict[str, Any]
    headers: httpx2.Headers


# A scripted answer: given the request's JSON-RPC id and params, the response
# (or raise, as a transport failure would).
Reply = Callable[[Any, dict[str, Any]], httpx2.Response]
# A tool's behaviour: its arguments in, its `CallToolResult` (as JSON) out.
ToolFunction = Callable[[dict[str, Any]], dict[str, Any]]


def _answer(
    rpc_id: Any, result: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx2.Response:
    return httpx2.Response(
        200, json={"jsonrpc": "2.0", "id": rpc_id, "result": result}, headers=headers
    )


def _error(rpc_id: Any, code: int, message: str, status: int = 200) -> httpx2.Response:
    return httpx2.Response(
        status, json={"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}
    )


def text_result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    """A `CallToolResult` of one text block (``isError``: the tool's own failure)."""
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def echo(arguments: dict[str, Any]) -> dict[str, Any]:
    return text_result(json.dumps(arguments, sort_keys=True))


@dataclass
class MockMcpServer:
    """An MCP server as an httpx2 handler: see the module's docstring."""

    era: Era = LEGACY_VERSION
    url: str = URL
    seen: list[Seen] = field(default_factory=list)
    tools: dict[str, tuple[dict[str, Any], ToolFunction]] = field(default_factory=dict)
    _script: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _session: str | None = None

    # Setting up -----------------------------------------------------------------------

    def tool(
        self,
        name: str,
        function: ToolFunction = echo,
        *,
        idempotent: bool | None = None,
        schema: dict[str, Any] | None = None,
    ) -> MockMcpServer:
        """Offer tool ``name`` (``idempotent``: its ``idempotentHint``)."""
        definition: dict[str, Any] = {
            "name": name,
            "description": f"the mock's {name}",
            "inputSchema": schema or {"type": "object"},
        }
        if idempotent is not None:
            definition["annotations"] = {"idempotentHint": idempotent}
        self.tools[name] = (definition, function)
        return self

    def then(self, *replies: Reply, method: str = "tools/call") -> MockMcpServer:
        """Answer the next requests for ``method`` with ``replies``, in order."""
        self._script[method].extend(replies)
        return self

    def calls(self) -> list[Seen]:
        """The ``tools/call`` requests received (the handshake and listings left out)."""
        return [seen for seen in self.seen if seen.method == "tools/call"]

    @staticmethod
    def status(code: int, body: str = "") -> Reply:
        """An HTTP error status instead of a JSON-RPC answer (a proxy's 503, say)."""
        return lambda *_: httpx2.Response(code, text=body or httpx2.codes.get_reason_phrase(code))

    @staticmethod
    def error(code: int, message: str, status: int = 200) -> Reply:
        """The server's own JSON-RPC error (``status``: at that HTTP status,
        as MCP 2025-11-25's transports let a server answer)."""
        return lambda rpc_id, _: _error(rpc_id, code, message, status)

    @staticmethod
    def unreachable() -> Reply:
        """No connection: what httpx2 raises when nothing listens."""

        def reply(*_: Any) -> httpx2.Response:
            raise httpx2.ConnectError("connection refused")

        return reply

    @staticmethod
    def dropped() -> Reply:
        """The connection closed after the request went out: it may have run."""

        def reply(*_: Any) -> httpx2.Response:
            raise httpx2.RemoteProtocolError("peer closed connection without sending a response")

        return reply

    @staticmethod
    def slow(seconds: float = 3600.0) -> Reply:
        """An answer that takes ``seconds``: past the caller's timeout, the
        call is given up (the SDK's own read timeout), not the connection."""

        async def reply(rpc_id: Any, _: dict[str, Any]) -> httpx2.Response:
            await asyncio.sleep(seconds)
            return _answer(rpc_id, text_result("too late"))

        return reply  # type: ignore[return-value]

    # Serving --------------------------------------------------------------------------

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        # A scripted reply may be a coroutine (`slow`): httpx2's MockTransport awaits it.
        if request.method == "GET":
            return httpx2.Response(405)  # no stream of the server's own to listen to
        if request.method == "DELETE":
            self._session = None
            return httpx2.Response(200)
        body = json.loads(request.content)
        method, params = str(body.get("method")), body.get("params") or {}
        self.seen.append(Seen(method, params, request.headers))
        if "id" not in body:
            return httpx2.Response(202)  # a notification: nothing to answer
        rpc_id = body["id"]
        if self._script[method]:
            return self._script[method].popleft()(rpc_id, params)
        return self._default(method, rpc_id, params)

    def _default(self, method: str, rpc_id: Any, params: dict[str, Any]) -> httpx2.Response:
        capabilities = {"tools": {"listChanged": False}}
        if method == "server/discover":
            if self.era == LEGACY_VERSION:
                return _error(rpc_id, METHOD_NOT_FOUND, "Method not found: server/discover")
            return _answer(
                rpc_id, {"supportedVersions": [LATEST_MODERN_VERSION], "capabilities": capabilities}
            )
        if method == "initialize":
            self._session = uuid.uuid4().hex
            result = {
                "protocolVersion": LEGACY_VERSION,
                "capabilities": capabilities,
                "serverInfo": {"name": "mock", "version": "1.0"},
            }
            return _answer(rpc_id, result, {"mcp-session-id": self._session})
        if method == "ping":
            return _answer(rpc_id, {})
        if method == "tools/list":
            tools = [definition for definition, _ in self.tools.values()]
            # 2026-07-28 listings say how long they may be cached, and by whom.
            hints = {"ttlMs": 0, "cacheScope": "private"} if self.era != LEGACY_VERSION else {}
            return _answer(rpc_id, self._stamped({"tools": tools, **hints}))
        if method == "tools/call":
            found = self.tools.get(str(params.get("name")))
            if found is None:
                return _error(rpc_id, INVALID_PARAMS, f"Unknown tool: {params.get('name')}")
            return _answer(rpc_id, self._stamped(found[1](params.get("arguments") or {})))
        return _error(rpc_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    def _stamped(self, result: dict[str, Any]) -> dict[str, Any]:
        """A 2026-07-28 result names its kind (``complete``, not ``input_required``)."""
        if self.era == LEGACY_VERSION:
            return result
        return {"resultType": "complete", **result}

    # Clients --------------------------------------------------------------------------

    def http(self, auth: UpstreamAuth) -> httpx2.AsyncClient:
        """An `adapters.mcp_client.HttpFactory`: a client whose requests reach
        this server, carrying ``auth``'s credential as the gateway's would."""
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self), auth=auth)
