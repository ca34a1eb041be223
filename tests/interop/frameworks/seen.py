"""Pure-ASGI middleware appending one JSON line per HTTP request to a file (no extra deps).

It also keeps what each request came with -- its bearer token and W3C
``traceparent`` -- for an agent that calls onward (the chain test): in
``RECEIVED`` while the request is served (tasks it starts inherit it), and by
the A2A message id in ``BY_MESSAGE`` (for a framework that runs its tasks
elsewhere, fasta2a's worker).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

Received = dict[str, str | None]
RECEIVED: ContextVar[Received] = ContextVar("received", default={})  # noqa: B039 -- never mutated
BY_MESSAGE: dict[str, Received] = {}

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SeenMiddleware:
    """Buffers the request body, records {method,path,authorization,body}, then replays it to the app."""

    def __init__(self, app: ASGIApp, seen_file: str) -> None:
        self.app, self.seen_file = app, seen_file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # client went away before finishing the body
                break
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        line = {
            "method": scope["method"],
            "path": scope["path"],
            "authorization": headers.get("authorization"),
            "body": body.decode("utf-8", "replace"),
        }
        # One short append per request, in a test agent: blocking is fine here.
        with open(self.seen_file, "a", encoding="utf-8") as f:  # noqa: ASYNC230
            f.write(json.dumps(line) + "\n")
        bearer = (headers.get("authorization") or "").partition(" ")[2] or None
        got: Received = {"bearer": bearer, "traceparent": headers.get("traceparent")}
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            message = json.loads(body)["params"]["message"]
            BY_MESSAGE[message.get("messageId") or message.get("message_id")] = got
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for http.disconnect as usual

        token = RECEIVED.set(got)
        try:
            await self.app(scope, replay, send)
        finally:
            RECEIVED.reset(token)
