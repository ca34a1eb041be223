"""The official `mcp` client against the gateway's `/mcp`, with a bearer token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from registry.tls import client_tls

# The two revisions a client may speak: 2026-07-28 (stateless) and 2025-11-25 (sessions).
MODES = ["2026-07-28", "legacy"]


class NameAnswerer:
    """An elicitation callback that answers every question with the name Ada
    and keeps the questions it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada"})


@contextlib.asynccontextmanager
async def mcp_client(
    url: str,
    token: str | None,
    mode: str,
    *,
    headers: dict[str, str] | None = None,
    hears_notices: bool = False,
    **options: Any,
) -> AsyncIterator[Client]:
    """``headers``: sent on every request as well (a `traceparent`, say).

    ``hears_notices``: a 2025-11-25 session is handed over only once its
    standalone GET stream is open -- the channel a server's notices come on.
    The client opens it on its own after initializing; a notice the server
    sends before it is open is not delivered (the specification replays
    only on a resumption), so a test that changes something and waits for
    the notice must wait for the stream first."""
    assert not hears_notices or mode == "legacy", "2026-07-28 hears on subscriptions/listen"
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    listening = anyio.Event()

    async def on_response(response: httpx2.Response) -> None:
        # The server answered the GET with its event stream: it is registered.
        streamed = response.headers.get("content-type", "").startswith("text/event-stream")
        resumed = "last-event-id" in response.request.headers
        if response.request.method == "GET" and streamed and not resumed:
            listening.set()

    http = httpx2.AsyncClient(
        headers={**sent, **(headers or {})},
        timeout=httpx2.Timeout(30, read=300),
        verify=client_tls(),
        event_hooks={"response": [on_response]},
    )
    async with (
        http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        if hears_notices:
            with anyio.fail_after(30):
                await listening.wait()
        yield client
