"""A REST API federated by its OpenAPI document: the upstream the federation
calls in place of an MCP session (`gateway.federation.upstreams` starts one
per server registered with ``openapi``).

It offers what `adapters.mcp.McpUpstream` offers the federation -- ``ready``,
``wait_ready``, ``list_tools``, ``call_tool``, ``stop`` and ``run`` -- so a
call takes the one path every federated tool takes (policy, approval pins,
sets, audit, breaker, rate limits: `McpFederation.call_tool`). There is no
session to keep: ``run()`` hands the tools read from the document at
registration to ``on_tools`` (what the registrant's admin approved), reports
the API healthy, then waits to be stopped. A call the API cannot be reached
for reports it unhealthy, the next answered call healthy again.

Requests go through the MCP upstreams' one checked client
(`adapters.mcp_http.checked_client`: SSRF rules at connect time, no
redirects, no cookies, capped answers), with the call's credential set by
`UpstreamAuth` -- the service credential, or the user's own connected
account's token (`gateway.federation.credentials`): never the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx2
import mcp_types as types

from adapters.core_check import require_core
from adapters.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from adapters.mcp_client import Connected, HttpFactory, OnHealth, OnListChanged, OnNotice, OnTools
from adapters.mcp_http import Credential, TooLarge, UpstreamAuth, call_credential
from adapters.mcp_upstream_errors import describe
from adapters.openapi_http import BadArguments, error_result, request_of, result_of

logger = logging.getLogger(__name__)
OPENAPI_PROTOCOL = "openapi"  # what the server record shows as its protocol version
CREDENTIAL_REFUSED = -32001  # a JSON-RPC server error (JSON-RPC 2.0 §5.1): not the tool's


class OpenApiUpstream:
    """One REST API's operations as tools (see the module's docstring)."""

    def __init__(
        self,
        server_id: str,
        base_url: str,
        stored: Mapping[str, Any],
        http: HttpFactory,
        *,
        on_tools: OnTools,
        on_health: OnHealth,
        users_own: bool = False,
    ) -> None:
        """``stored``: what registration kept of the document (tools and
        bindings, `registry.openapi_tools`). ``users_own``: calls carry the
        user's own token, whose refusal (401, 403) is the federation's to
        tell the user (connect again, or grant a scope), not a tool error."""
        self.server_id = server_id
        self._base_url = base_url
        self._tools: list[dict[str, Any]] = [dict(t) for t in stored.get("tools", [])]
        self._bindings: dict[str, Mapping[str, Any]] = dict(stored.get("bindings", {}))
        self._on_tools = on_tools
        self._on_health = on_health
        self._users_own = users_own
        self._auth = UpstreamAuth()
        self._client: httpx2.AsyncClient = http(self._auth)
        self._stopped = asyncio.Event()
        self._ready = asyncio.Event()
        self._healthy: bool | None = None
        info = {
            "name": str(stored.get("title") or server_id),
            "version": str(stored.get("version") or ""),
        }
        self.connected = Connected(OPENAPI_PROTOCOL, info)
        self.last_error: str | None = None
        self.own_failure: BaseException | None = None
        self.capabilities: types.ServerCapabilities | None = None
        self.notice_listeners: list[OnNotice] = []
        self.list_listeners: list[OnListChanged] = []

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        return self.ready

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        try:
            await self._on_tools(self._tools)
            self._ready.set()
            await self._health(True, None)
            await self._stopped.wait()
        finally:
            await self._client.aclose()

    async def list_tools(self) -> list[dict[str, Any]]:
        return [dict(t) for t in self._tools]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        credential: Credential | None = None,
        timeout_seconds: float | None = None,
        **_mcp_only: Any,  # progress, input responses, relays: an MCP session's
    ) -> types.CallToolResult:
        require_core("the OpenAPI upstream's tools/call")
        binding = self._bindings.get(name)
        if binding is None:
            raise UpstreamError(-32602, f"unknown tool {name}")
        try:
            method, url, options = request_of(self._base_url, binding, arguments)
        except BadArguments as bad:
            return error_result(str(bad))
        timeout = httpx2.Timeout(timeout_seconds) if timeout_seconds else httpx2.USE_CLIENT_DEFAULT
        try:
            with call_credential(credential):
                response = await self._client.request(method, url, timeout=timeout, **options)
        except httpx2.TimeoutException:
            raise UpstreamTimeout(
                f"REST API {self.server_id} did not answer within {timeout_seconds}s"
            ) from None
        except TooLarge as exc:
            return error_result(f"the API's answer was refused: {exc}")
        except httpx2.TransportError as exc:
            detail = f"REST API {self.server_id} is unreachable: {describe(exc)}"
            await self._health(False, detail)
            raise UpstreamUnavailable(detail) from None
        await self._health(True, None)
        if self._users_own and response.status_code in (401, 403):
            raise UpstreamError(
                CREDENTIAL_REFUSED,
                f"REST API {self.server_id} refused your credential (HTTP {response.status_code})",
            )
        return result_of(self.server_id, response, binding)

    async def _health(self, ok: bool, detail: str | None) -> None:
        if self._healthy is ok:
            return
        self._healthy = ok
        self.last_error = detail
        with contextlib.suppress(Exception):  # health is a record, never the call's failure
            await self._on_health(ok, detail, self.connected if ok else None)
