"""Pass-through `tools/call` to a 2026-07-28 MCP server over Streamable HTTP.

The hot path of the MCP federation. The SDK's client (its `ClientSession`,
the Streamable HTTP transport task and httpx2's request building) is a large
share of the gateway's CPU per federated call (profiled in docs/history/
performance-to-2026-11-27.md, "MCP tools/call through the gateway"), while
a `tools/call` to a 2026-07-28 server is one POST whose answer comes back on
the same response: JSON, or an SSE stream of progress and log notifications
ending in the response. So `McpUpstream.call_tool` sends such a call itself,
over an aiohttp pool with the SSRF rules of `adapters.mcp_http`, and keeps
the SDK for everything else (stdio, 2025-11-25 sessions and the 2025-11-25
lane, every other request).

What goes on the wire is what the SDK would send, from the SDK's own state:

* the request is stamped as the session stamps its own, by the gateway's
  copy of the SDK's stamp, built once per session from public names
  (`adapters.mcp_stamp`, tested against the SDK's): ``_meta`` with the
  protocol version, the gateway's client info and the caller's
  capabilities (as `adapters.mcp_wire` puts them in the SDK's requests,
  `adapters.mcp_relay.upstream_capabilities`); the
  ``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` and
  ``Mcp-Param-*`` headers, the latter from the tool's ``x-mcp-header``
  annotations in the session's latest `tools/list`, which the upstream's
  owner task keeps fresh and hands to the stamp (`adapters.mcp.McpUpstream`);
  the caller's ``logLevel`` opt-in and a ``progressToken`` (the request id,
  as the SDK's dispatcher does) are added the same way;
* exactly one credential header (the call's, else the connection's default;
  never anything of the caller's request), ``Accept``/``Content-Type`` as
  the SDK's transport sets them, identity coding, no cookies, no redirects;
* the answer is read as the SDK's transport reads it (its SSE parser and
  per-event cap, a JSON-RPC error in a 4xx body, 202 and other statuses),
  and the result checked as `ClientSession.send_request` and `call_tool`
  check it (the version's result schema, the result union, the tool's
  output schema through `ClientSession.validate_tool_result`): the statuses
  here, the body in `adapters.mcp_answers`.

Failures are raised as the SDK raises them (`MCPError` with the SDK's code
and wording, or a transport exception), so `McpUpstream._send` maps them
exactly as for the SDK path. Cancelling the calling task closes the POST's
connection: on 2026-07-28 that is the cancellation. A redirect is not
followed here: the call is given back to the SDK (`FALLBACK`), which follows
a same-origin one through the same checks (a 3xx means the server did not
run the request).

Not reproduced: the SDK's resumption of an SSE answer that breaks off after
events with ids (a GET with ``Last-Event-ID``); here such a call fails as
one whose stream ended without a response. Requests a server sends on the
call's stream (a 2026-07-28 server asks with `InputRequiredResult` instead)
are dropped.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import mcp_types as types
import yarl
from mcp import MCPError
from mcp.client.session import ClientSession
from mcp.client.streamable_http import DEFAULT_MAX_SSE_EVENT_SIZE
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
)

from adapters.http import (
    UpstreamRefused,
    checked_session,
    checked_url,
    read_capped,
    refuse_coding,
)
from adapters.mcp_answers import (
    METHOD,
    OnNotice,
    checked_result,
    error_of,
    read_events,
    response_of,
)
from adapters.mcp_http import Credential, TooLarge, note_status
from adapters.mcp_stamp import LISTING, ToolCallStamp
from registry.ssrf import AddressPolicy

FALLBACK: Final = object()  # "not handled here; send it through the SDK"
# As the SDK's Streamable HTTP transport sets them (and no content coding).
_HEADERS: Final = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "Accept-Encoding": "identity",
}


class PassThroughRefused(OSError):
    """The URL is one the SSRF policy forbids (raised before anything is sent)."""


class McpPassThrough:
    """One aiohttp pool for every upstream's pass-through calls."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        connect_timeout_seconds: float,
        max_response_bytes: int,
        max_sse_event_bytes: int | None = DEFAULT_MAX_SSE_EVENT_SIZE,
    ) -> None:
        self._policy = policy
        self._connect_timeout = connect_timeout_seconds
        self.max_response_bytes = max_response_bytes
        self.max_sse_event_bytes = max_sse_event_bytes
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._ids = itertools.count(1)

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = checked_session(self._policy)
        return self._session

    def _url(self, text: str) -> yarl.URL:
        url = self._urls.get(text)
        if url is None:
            try:
                url = checked_url(self._policy, text)
            except UpstreamRefused as exc:
                raise PassThroughRefused(f"refused by the SSRF policy: {exc}") from None
            if len(self._urls) >= 256:
                self._urls.clear()
            self._urls[text] = url
        return url

    def _timeout(self, read_seconds: float) -> aiohttp.ClientTimeout:
        # The call's deadline is the caller's `asyncio.timeout`; this is the
        # longest silence between two reads, as the SDK's httpx2 read timeout.
        timeout = self._timeouts.get(read_seconds)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout, sock_read=read_seconds
            )
            if len(self._timeouts) >= 64:
                self._timeouts.clear()
            self._timeouts[read_seconds] = timeout
        return timeout

    async def call_tool(
        self,
        session: ClientSession,
        stamp: ToolCallStamp,
        url: str,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        credential: Credential | None,
        read_timeout_seconds: float,
        progress_callback: ProgressFnT | None,
        input_responses: types.InputResponses | None,
        request_state: str | None,
        meta: Mapping[str, Any] | None,
        on_notice: OnNotice | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult | object:
        """The call's result, or `FALLBACK` when the server did not take it
        (a redirect) and the SDK should send it instead. ``stamp``:
        ``session``'s (`adapters.mcp_stamp`)."""
        request_id = next(self._ids)
        body, headers = _request(
            stamp,
            request_id,
            name,
            arguments,
            input_responses=input_responses,
            request_state=request_state,
            meta=meta,
            progress=progress_callback is not None,
        )
        if credential is not None:
            headers[credential.header] = credential.value
        version = session.protocol_version
        assert version is not None  # a connected 2026-07-28 session
        raw = await self._post(
            self._url(url),
            body,
            headers,
            request_id,
            version,
            read_timeout_seconds,
            progress_callback,
            on_notice,
        )
        if raw is FALLBACK:
            return FALLBACK
        assert isinstance(raw, dict)
        return await checked_result(session, name, version, raw)

    async def tools_page(
        self,
        session: ClientSession,
        stamp: ToolCallStamp,
        url: str,
        *,
        credential: Credential | None,
        read_timeout_seconds: float,
    ) -> dict[str, Any] | None:
        """The first page of the server's `tools/list`, as JSON, unchecked
        (None: not taken here, a redirect): for a probe to compare with the
        last listing before the SDK lists again (`adapters.mcp.McpUpstream`).
        Sent as the session sends its own listing."""
        request_id = next(self._ids)
        params: dict[str, Any] = {}
        headers = dict(_HEADERS)
        stamp.stamp_listing(params, headers)
        if credential is not None:
            headers[credential.header] = credential.value
        body = _body(request_id, LISTING, params)
        version = session.protocol_version
        assert version is not None  # a connected 2026-07-28 session
        raw = await self._post(
            self._url(url), body, headers, request_id, version, read_timeout_seconds, None, None
        )
        return raw if isinstance(raw, dict) else None

    async def _post(
        self,
        url: yarl.URL,
        body: bytes,
        headers: dict[str, str],
        request_id: int,
        version: str,
        read_seconds: float,
        progress_callback: ProgressFnT | None,
        on_notice: OnNotice | None,
    ) -> dict[str, Any] | object:
        response = await self._pool().post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=self._timeout(read_seconds),
        )
        done = False
        try:
            refuse_coding(response.headers.get("Content-Encoding"), TooLarge)
            status = response.status
            note_status(status, response.headers.get("WWW-Authenticate"))
            if status == 202:
                raise MCPError(INVALID_REQUEST, "server answered a request with 202 Accepted")
            if 300 <= status < 400:
                return FALLBACK  # not run; the SDK follows a same-origin redirect
            content_type = response.headers.get("Content-Type", "").lower()
            if status >= 400:
                if content_type.startswith("application/json"):
                    error = error_of(await self._read(response))
                    if error is not None:
                        raise MCPError(error.code, error.message, error.data)
                if status == 404:  # no session at 2026-07-28: the method is unknown
                    raise MCPError(METHOD_NOT_FOUND, "Not Found")
                raise MCPError(INTERNAL_ERROR, "Server returned an error response")
            if content_type.startswith("application/json"):
                answer = await self._read(response)
                done = True
                return response_of(answer, request_id)
            if content_type.startswith("text/event-stream"):
                streamed = await read_events(
                    response,
                    self.max_sse_event_bytes,
                    request_id,
                    version,
                    progress_callback,
                    on_notice,
                )
                done = True
                return streamed
            raise MCPError(INVALID_REQUEST, f"Unexpected content type: {content_type}")
        finally:
            if done:
                response.release()  # read to its end: back to the pool
            else:
                # Mid-body (an error, a cap, the caller cancelled): the
                # connection is closed, which is how 2026-07-28 cancels.
                response.close()

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        return await read_capped(response, self.max_response_bytes, TooLarge)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _request(
    stamp: ToolCallStamp,
    request_id: int,
    name: str,
    arguments: Mapping[str, Any] | None,
    *,
    input_responses: types.InputResponses | None,
    request_state: str | None,
    meta: Mapping[str, Any] | None,
    progress: bool,
) -> tuple[bytes, dict[str, str]]:
    """The JSON-RPC request and its headers, as `ClientSession.send_request`
    and the Streamable HTTP transport build them."""
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = dict(arguments)
    if input_responses is not None:
        params["inputResponses"] = {
            key: value.model_dump(by_alias=True, mode="json", exclude_none=True)
            if hasattr(value, "model_dump")
            else value
            for key, value in input_responses.items()
        }
    if request_state is not None:
        params["requestState"] = request_state
    if meta:
        params["_meta"] = dict(meta)
    headers = dict(_HEADERS)
    stamp.stamp(params, headers)
    if progress:
        # The SDK's dispatcher: the request id doubles as the progress token.
        params["_meta"]["progressToken"] = request_id
    return _body(request_id, METHOD, params), headers


def _body(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    """A JSON-RPC request's bytes, compact, as the SDK's transport posts them."""
    document = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
