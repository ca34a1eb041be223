"""An MCP server that answers oddly: the official SDK's server (`ToolBox`,
stateless, JSON answers) behind an ASGI filter that rewrites its answers.

* ``bare``: every result goes out without ``resultType`` -- which MCP
  2026-07-28 allows ("Absent `resultType` is equivalent to 'complete'"), and
  which peers other than the official SDK send;
* ``garbage``: the next that many `tools/call` answers are malformed (a
  result MCP does not define), then the server answers normally again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.support.mcp_servers import ToolBox
from tests.support.servers import ServerThread


@dataclass
class Oddities:
    bare: bool = False
    garbage: int = 0
    garbled: int = 0  # how many answers were garbled


def _rewrite(odd: Oddities, request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    result = answer.get("result")
    if not isinstance(result, dict):
        return answer
    if request.get("method") == "tools/call" and odd.garbage > 0:
        odd.garbage -= 1
        odd.garbled += 1
        return {**answer, "result": {"resultType": "complete", "content": 42}}
    if odd.bare:
        result.pop("resultType", None)
    return answer


def odd_server(odd: Oddities, box: ToolBox | None = None) -> ServerThread:
    """``box``'s tools at ``{url}/mcp``, answered as ``odd`` says."""
    box = box or ToolBox()

    def build(_url: str) -> ASGIApp:
        inner = box.server.streamable_http_app(stateless_http=True, json_response=True)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                await inner(scope, receive, send)
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            request = json.loads(body or b"{}")
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return {"type": "http.disconnect"}
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            start: Message | None = None
            chunks: list[bytes] = []

            async def capture(message: Message) -> None:
                nonlocal start
                if message["type"] == "http.response.start":
                    start = message
                else:
                    chunks.append(message.get("body", b""))

            await inner(scope, replay, capture)
            assert start is not None
            payload = b"".join(chunks)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            if payload and dict(headers).get(b"content-type", b"").startswith(b"application/json"):
                answer = json.loads(payload)
                if isinstance(request, dict) and isinstance(answer, dict):
                    payload = json.dumps(_rewrite(odd, request, answer)).encode()
            headers.append((b"content-length", str(len(payload)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

        return app

    return ServerThread(build).start()
