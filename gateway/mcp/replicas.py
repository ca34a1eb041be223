"""2025-11-25 MCP sessions on any replica, behind a balancer without affinity.

A 2025-11-25 session lives in the process that opened it: the SDK keeps its
transport, its message router and its SSE streams there (MCP 2025-11-25
"Transports", Streamable HTTP, "Session Management"), and a client sends
every later request with the `Mcp-Session-Id` it was given. Behind a
round-robin balancer those requests land on any replica; on any but the
opener the SDK answers 404 "Session not found", and the client has to start
over.

So the session id names its replica -- `<replica id>.<the SDK's id>`; the
spec asks only that it be visible ASCII, which "." is -- and every replica
registers where its siblings reach it (`replica_url`, in `gateway_replicas`).
A request for a session of another replica is passed on to that replica as it
came (method, path, headers, body; the answer streamed back as it is made,
SSE included), so calls, the standalone GET stream, `Last-Event-ID`
resumption and DELETE all work wherever the balancer sends them. The replica
passed to authenticates the caller again, as for any request; nothing is
trusted because it was forwarded.

A session whose replica is gone (not renewed for `replica_stale_seconds`, or
not answering) is answered 404 with the reason -- which the spec's clients take
as "start a new session" -- and so is a request already passed on once
(a loop guard: a replica restarted under the same address has a new id).

A balancer can also route by the id's prefix, which saves the hop: the
prefix is stable for the replica's life (docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.storage.replicas import ReplicaDirectory

logger = logging.getLogger(__name__)

SESSION_HEADER = b"mcp-session-id"
FORWARDED_HEADER = b"x-switchboard-forwarded-by"
# Hop-by-hop (RFC 9110 section 7.6.1) or recomputed: not passed on.
_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
}


class SessionRouting:
    """Pure ASGI, outside the SDK's transport: names this replica in the
    session ids it hands out, strips the name from those it is sent, and
    passes a request for another replica's session on to it."""

    def __init__(self, app: ASGIApp, directory: ReplicaDirectory) -> None:
        self.app = app
        self.directory = directory
        self._prefix = f"{directory.id}.".encode()
        self._http: aiohttp.ClientSession | None = None

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            # Not the upstream pool: a sibling's address is ours, from the
            # database, not a registrant's, so the SSRF rules do not apply;
            # no total timeout (an SSE stream lasts as long as it lasts).
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        session = next((v for k, v in headers if k.lower() == SESSION_HEADER), None)
        if session is not None:
            owner, dot, local = session.decode("latin-1").partition(".")
            if dot and owner != self.directory.id:
                await self._elsewhere(owner, scope, receive, send)
                return
            if dot:
                headers = [
                    (k, local.encode("latin-1") if k.lower() == SESSION_HEADER else v)
                    for k, v in headers
                ]
                scope = dict(scope, headers=headers)
        await self.app(scope, receive, self._naming(send))

    def _naming(self, send: Send) -> Send:
        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(
                    message,
                    headers=[
                        (k, self._prefix + v if k.lower() == SESSION_HEADER else v)
                        for k, v in message.get("headers", [])
                    ],
                )
            await send(message)

        return named

    async def _elsewhere(self, owner: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        if any(k.lower() == FORWARDED_HEADER for k, _ in headers):
            await _not_found(send, f"session of replica {owner} was passed on once already")
            return
        url = await self.directory.url_of(owner)
        if url is None:
            await _not_found(send, f"the replica that opened it ({owner}) is no longer running")
            return
        body = await _body(receive)
        target = (
            url
            + scope.get("path", "")
            + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        )
        outgoing = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in headers
            if k.lower() not in _HOP and k.lower() != FORWARDED_HEADER
        ]
        outgoing.append((FORWARDED_HEADER.decode(), self.directory.id))
        try:
            async with self.http().request(
                scope["method"], target, headers=outgoing, data=body, allow_redirects=False
            ) as answer:
                start: Message = {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": [
                        (k.lower(), v) for k, v in answer.raw_headers if k.lower() not in _HOP
                    ],
                }
                await send(start)
                async for chunk in _chunks(answer):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            self.directory.forget(owner)
            logger.warning(
                "replica %s (%s) holding an MCP session did not answer: %s", owner, url, exc
            )
            with contextlib.suppress(Exception):  # nothing sent yet, or the stream is cut
                await _not_found(send, f"the replica that opened it ({owner}) cannot be reached")


async def _chunks(answer: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in answer.content.iter_any():
        yield chunk


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _not_found(send: Send, why: str) -> None:
    """404 for a session that cannot be served (MCP 2025-11-25: the client
    starts a new session), with the reason."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": f"Session not found: {why}; start a new session"},
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
