"""The official `mcp` client against the gateway's `/mcp`, with a bearer token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

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
    **options: Any,
) -> AsyncIterator[Client]:
    """``headers``: sent on every request as well (a `traceparent`, say)."""
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(
        headers={**sent, **(headers or {})},
        timeout=httpx2.Timeout(30, read=300),
        verify=client_tls(),
    )
    async with (
        http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        yield client
