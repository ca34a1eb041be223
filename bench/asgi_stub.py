"""What the benches' bare ASGI agents share (`bench.a2a_forwarding`'s stub,
`bench.a2a_streams`' streaming agent, `bench.quote_desk`): uvicorn's lifespan
answered, a request's JSON body read, one whole answer or a stream of
server-sent events written. Bare ASGI, so the agent
costs a fraction of the CPU of what it stands in for and the forwarder
measured stays the bottleneck."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


async def lifespan(receive: Receive, send: Send) -> None:
    """uvicorn's lifespan messages, answered until shutdown."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def read_request(receive: Receive) -> Any:
    """The request's body, read to its last message, as JSON."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return json.loads(body)


async def respond(send: Send, payload: bytes, content_type: bytes = b"application/json") -> None:
    """A 200 carrying ``payload`` whole (its length said)."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def respond_events(send: Send, payloads: Iterable[bytes]) -> None:
    """A 200 event stream carrying each of ``payloads`` as one event, one
    write per event, as sse-starlette writes them."""
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for payload in payloads:
        event = b"data: " + payload + b"\r\n\r\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
