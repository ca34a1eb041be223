"""A2A upstream calls over the JSON-RPC binding (A2A 1.0 §9).

The gateway forwards the caller's JSON-RPC request body as it came (same
version pass-through parses no more than the envelope) with two headers of
its own: the minted token, and `A2A-Version`, which an a2a-sdk server needs
or it treats the request as 0.3 (DESIGN.md, known traps). Nothing else from
the caller's request is forwarded -- in particular not its `Authorization`.

Every call resolves the agent's host under the SSRF `AddressPolicy` and
connects to the checked address (the registry's `SafeFetcher.resolve`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from registry.fetch import FetchError, SafeFetcher

A2A_VERSION = "1.0"
JSONRPC_BINDING = "JSONRPC"


class UpstreamError(Exception):
    """The agent could not be reached or answered unusably; safe to show."""


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    content_type: str
    body: bytes


def jsonrpc_interface(card: Mapping[str, Any]) -> str:
    """The URL of the card's first JSON-RPC interface speaking A2A 1.0."""
    for interface in card.get("supportedInterfaces") or []:
        if (
            isinstance(interface, Mapping)
            and interface.get("protocolBinding") == JSONRPC_BINDING
            and str(interface.get("protocolVersion") or A2A_VERSION).startswith("1.")
            and isinstance(interface.get("url"), str)
        ):
            return str(interface["url"])
    raise UpstreamError("the agent's card offers no A2A 1.0 JSON-RPC interface")


class A2AJsonRpcClient:
    def __init__(self, fetcher: SafeFetcher, *, timeout_seconds: float, max_bytes: int) -> None:
        self._fetcher = fetcher
        self._max_bytes = max_bytes
        self._timeout = timeout_seconds
        # httpx pools connections by address, and we connect to addresses: one
        # pool per TLS server name, so a connection whose certificate was checked
        # for one hostname never carries a request for another on the same IP.
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client_for(self, scheme: str, hostname: str) -> httpx.AsyncClient:
        key = hostname if scheme == "https" else ""
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                timeout=self._timeout, trust_env=False, follow_redirects=False
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def post(self, url: str, body: bytes, token: str) -> UpstreamResponse:
        try:
            target = await self._fetcher.resolve(url)
        except FetchError as exc:
            raise UpstreamError(str(exc)) from None
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "A2A-Version": A2A_VERSION,
            "Authorization": f"Bearer {token}",
        }
        extensions = {"sni_hostname": target.hostname} if target.scheme == "https" else {}
        client = self._client_for(target.scheme, target.hostname)
        try:
            request = client.build_request(
                "POST", target.pinned_url, content=body, headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the agent could not be reached ({type(exc).__name__})") from None
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise UpstreamError(f"the agent's answer exceeds {self._max_bytes} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the agent's answer broke off ({type(exc).__name__})") from None
        finally:
            await response.aclose()
        return UpstreamResponse(
            response.status_code, response.headers.get("content-type", ""), b"".join(chunks)
        )
