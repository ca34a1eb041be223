"""A cheap MCP client for load: JSON-RPC over one aiohttp connection.

A load bench's clients share the machine with the gateway they measure. The
`mcp` SDK's `Client` costs a core for eight callers on this 2-core machine
(session streams, models, a structured result checked against the tool's
schema), so the gateway's own latency was read through a queue in the bench.
This client sends the same request the SDK sends at revision 2026-07-28 (the
version in the headers and in ``_meta``, `Mcp-Method`/`Mcp-Name` as the
transport asks) and reads the answer, JSON or an event stream, as plainly as
it can. It checks what a load bench needs (a result, not an error) and
nothing a real client would add; that is the SDK's job, and e2e tests run it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from mcp_types import CLIENT_CAPABILITIES_META_KEY, PROTOCOL_VERSION_META_KEY

VERSION = "2026-07-28"
META = {PROTOCOL_VERSION_META_KEY: VERSION, CLIENT_CAPABILITIES_META_KEY: {}}


@dataclass(frozen=True)
class ToolResult:
    """What `bench.catalog_load` reads of a `tools/call` answer (the SDK's names)."""

    is_error: bool
    structured_content: Any


class WireClient:
    """One caller: its own connection, its own request ids."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        self._ids = itertools.count(1)

    async def request(self, method: str, params: dict[str, Any], name: str = "") -> Any:
        """The JSON-RPC ``result`` of ``method`` (a JSON-RPC error raises)."""
        body = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": {**params, "_meta": META},
        }
        headers = {"Mcp-Method": method}
        if name:
            headers["Mcp-Name"] = name
        async with self._session.post(self._url, json=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method}: HTTP {response.status} {answer[:200]!r}")
            message = jsonrpc_answer(answer, response.content_type)
        if "result" not in message:
            raise RuntimeError(f"{method}: {message.get('error') or answer[:200]!r}")
        return message["result"]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        result = await self.request("tools/call", {"name": name, "arguments": arguments}, name)
        return ToolResult(bool(result.get("isError")), result.get("structuredContent"))


def jsonrpc_answer(answer: bytes, content_type: str) -> dict[str, Any]:
    """The JSON-RPC response in an HTTP answer: the body itself, or, in an
    event stream (a call that outlived the server's deferral window), the
    data of the event that answers -- notifications come before it; {} when
    no event answers."""
    if not content_type.startswith("text/event-stream"):
        return dict(json.loads(answer))
    for line in answer.splitlines():
        if line.startswith(b"data:") and line[5:].strip():
            message = json.loads(line[5:])
            if "result" in message or "error" in message:
                return dict(message)
    return {}


@contextlib.asynccontextmanager
async def wire_clients(url: str, tokens: list[str], count: int) -> AsyncIterator[list[WireClient]]:
    """``count`` clients of ``url``, each on a connection of its own; client
    k holds token k modulo their number."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for k in range(count):
            headers = {
                "Authorization": f"Bearer {tokens[k % len(tokens)]}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": VERSION,
            }
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    headers=headers,
                    connector=aiohttp.TCPConnector(limit=1),
                    timeout=aiohttp.ClientTimeout(total=600),
                )
            )
            clients.append(WireClient(session, url))
        yield clients
