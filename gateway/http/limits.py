"""Request body limit as pure ASGI middleware (no BaseHTTPMiddleware: it breaks streaming).

Bodies are buffered up to the limit and replayed, so an oversized body is
refused with 413 before any handler sees a byte of it, whether or not the
client declared a Content-Length. A modest overflow is read and dropped
first, so the client gets the 413 instead of a connection reset mid-upload.

A JSON body is also held to ``max_json_depth`` levels of nesting and to
numbers JSON has (`gateway.http.json_body.screen`: no NaN, no infinity),
refused in the caller's protocol before any handler parses it: every door
that takes JSON has the same limits.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.json_body import protocol_path, refusal, screen


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, max_json_depth: int = 64) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await self._refuse(send)
            return
        declared_too_large = declared is not None and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if declared_too_large or size > self.max_bytes:
                await self._drain(receive, more)
                await self._refuse(send)
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        refused = screen(body, self.max_json_depth) if _read_as_json(scope) else None
        if refused is not None:
            await _answer(send, *refusal(scope["path"], body, refused))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, more: bool) -> None:
        """Read and drop the rest of a modest overflow so the client sees the 413
        rather than a reset connection; give up on anything enormous."""
        budget = self.max_bytes * 8
        while more and budget > 0:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            budget -= len(message.get("body", b""))
            more = message.get("more_body", False)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "urn:switchboard:problem:body-too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"the limit is {self.max_bytes} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _read_as_json(scope: Scope) -> bool:
    """JSON by its media type (`application/json`, `application/*+json`), or
    with none (FastAPI reads such a body as JSON), or sent to a protocol door
    (which reads JSON whatever the header says); a form or a YAML document is
    not read as JSON."""
    if protocol_path(scope["path"]):
        return True
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower() or not value.strip()
    return True


async def _answer(send: Send, status: int, content_type: str, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
