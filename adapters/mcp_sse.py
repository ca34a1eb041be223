"""The legacy HTTP+SSE transport to an MCP upstream, and how a server that
speaks only it is told from a Streamable HTTP one.

Many published MCP servers still speak only the HTTP+SSE transport of MCP
2024-11-05 ("Transports", "HTTP with SSE"): the client GETs an SSE stream
whose first event, ``endpoint``, names the URL it POSTs its messages to, and
every answer comes back on that one stream. The SDK's own client
(`mcp.client.sse.sse_client`) speaks it; `sse_transport` hands it the
gateway's checked httpx2 client (`adapters.mcp_http`: the SSRF rules at
connect time, one credential header per request), which the SDK enters and
closes with the session. The SDK POSTs each message from the context of the
task that sent it, so a call's own credential (`CALL_CREDENTIAL`) goes with
that call's POST, as over Streamable HTTP.

What the server sends back all arrives on the one stream, read by one task
that is no caller's: a request the server makes mid-call (an elicitation)
names no call there, so a caller who can be asked gets a session of its own
for the call (`own_session_for`); progress (which names its request by
token) and notices (a resource updated, a list changed) reach whoever they
are for on the shared one.

Telling the two apart follows MCP 2025-03-26 and later, "Transports",
"Backwards Compatibility": a client POSTs to the server's URL; if that
fails with an HTTP 4xx (405 Method Not Allowed or 404 Not Found, say), it
GETs the URL expecting an SSE stream whose first event is ``endpoint``.
`PostRefusals` notes the first half on the Streamable HTTP attempt; the
second is the SSE client's own connect (`adapters.mcp_client.discover`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import httpx2
from mcp.client.sse import sse_client

from adapters.mcp_relay import CallRelay

# How long the stream may stay silent before the session is taken as lost
# (the owner then reconnects): the SDK's own default; servers built on the
# SDK send a comment every 15 s.
SSE_READ_SECONDS = 300.0

# Answers that say the credential was refused, not that the URL is another
# transport's: a legacy server would refuse the same credential.
_AUTH_STATUSES = frozenset({401, 403})


def sse_transport(
    url: str, http: httpx2.AsyncClient
) -> contextlib.AbstractAsyncContextManager[Any]:
    """The SDK's HTTP+SSE client to ``url`` (the server's SSE endpoint) over
    ``http``, which lives exactly as long as the session."""
    connect = http.timeout.connect
    requests = http.timeout.write

    def given(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        # The SDK asks for a client with its stream's read timeout; it gets
        # the checked one, with that read timeout and the gateway's others.
        if timeout is not None:
            http.timeout = httpx2.Timeout(requests, connect=connect, read=timeout.read)
        http.headers.update(headers or {})
        return http

    opened: contextlib.AbstractAsyncContextManager[Any] = sse_client(
        url,
        timeout=requests or 30.0,
        sse_read_timeout=SSE_READ_SECONDS,
        httpx_client_factory=given,
    )
    return opened


class PostRefusals:
    """An httpx2 response hook: the statuses of POSTs answered with a 4xx
    that is not about the credential -- the legacy server's half of the
    backwards-compatibility check."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    async def __call__(self, response: httpx2.Response) -> None:
        status = response.status_code
        legacy = 400 <= status < 500 and status not in _AUTH_STATUSES
        if legacy and response.request.method == "POST":
            self.statuses.append(status)

    def watch(
        self, http: Callable[[Any], httpx2.AsyncClient]
    ) -> Callable[[Any], httpx2.AsyncClient]:
        """``http``, with this hook on every client it makes."""

        def watched(auth: Any) -> httpx2.AsyncClient:
            client = http(auth)
            client.event_hooks["response"] = [*client.event_hooks["response"], self]
            return client

        return watched


# What a server may ask its caller mid-call (MCP 2025-11-25 client features).
_ASKED = ("elicitation", "sampling", "roots")


def own_session_for(transport: str, relay: CallRelay | None, *, legacy: bool) -> bool:
    """Whether a call goes over a session of its own: over HTTP+SSE, for a
    2025-11-25 caller who can be asked something mid-call.

    On the shared session the server's requests arrive on the one stream,
    which names no call, and are refused; on a session opened for one call
    (from that call's task, so its reader runs in the call's context) all
    that arrives is that call's, and `adapters.mcp_relay` routes it to its
    caller, log lines included. It costs a connection and a handshake per
    such call; a 2026-07-28 caller is asked with an ``input_required``
    result, never mid-call, so it keeps the shared session.
    """
    if transport != "sse" or not legacy or relay is None:
        return False
    declared = relay.upstream_capabilities()
    return any(declared.get(feature) is not None for feature in _ASKED)
