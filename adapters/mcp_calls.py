"""Calls over an MCP upstream's live session: a listing, `tools/call` (over
the pass-through or the SDK, on the 2026-07-28 session or the 2025-11-25
lane), any other request, and what their failures become. `McpUpstream`
(`adapters.mcp`) keeps the session these calls use."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import mcp_types as types
from mcp import Client, MCPError
from mcp.client.session import ClientSession, IncomingMessage
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    LOG_LEVEL_META_KEY,
    REQUEST_TIMEOUT,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from adapters.core_check import require_core
from adapters.errors import UpstreamError, UpstreamServerError, UpstreamTimeout, UpstreamUnavailable
from adapters.mcp_client import (
    CredentialSource,
    HttpFactory,
    ToolList,
    UpstreamSpec,
    UpstreamTimings,
    list_all_tools,
    open_client,
    where,
)
from adapters.mcp_http import (
    CALL_CREDENTIAL,
    Credential,
    UpstreamAuth,
    call_credential,
    failed_statuses_noted,
)
from adapters.mcp_lane import LANE_SESSION_GONE, LegacyLane
from adapters.mcp_passthrough import FALLBACK, McpPassThrough
from adapters.mcp_relay import CallRelay, relaying
from adapters.mcp_results import malformed
from adapters.mcp_sse import own_session_for
from adapters.mcp_stamp import ToolCallStamp
from adapters.mcp_upstream_errors import HTTP_ERROR_ANSWERS, describe, not_at_2025
from adapters.operations import meta_trace

T = TypeVar("T")
logger = logging.getLogger(__name__)


class UpstreamCalls:
    """The calls half of `adapters.mcp.McpUpstream`, which sets these."""

    spec: UpstreamSpec
    last_error: str | None
    # Why the last attempt to connect failed when the failure was the
    # gateway's own (`OwnFailure`), not the upstream's.
    own_failure: BaseException | None
    _auth: UpstreamAuth
    _http: HttpFactory
    _client: Client | None
    _lane: LegacyLane | None
    _broken: asyncio.Event
    _relist: asyncio.Event
    _timings: UpstreamTimings
    _passthrough: McpPassThrough | None
    # The primary session's `tools/call` stamp for the pass-through (None
    # while there is no such session, or it sends no call through it). Set
    # when the session is opened, cleared with `_client`: whenever
    # `_client` is a session, `_call_stamp` is that session's (`_stamp_for`).
    _call_stamp: ToolCallStamp | None
    _default_credential: CredentialSource

    async def _on_message(self, message: IncomingMessage) -> None:
        raise NotImplementedError

    async def list_tools(self) -> ToolList:
        """A fresh listing through the live session."""
        client = self._live()
        self._auth.default = await self._default_credential()
        try:
            async with asyncio.timeout(self._timings.call_seconds):
                tools = await list_all_tools(client)
        except Exception as exc:
            raise self._failure(exc, client=client) from None
        if client is self._client:  # still the primary session, whose stamp is `_call_stamp`
            self._tools_listed(tools)
        return tools

    def _tools_listed(self, tools: ToolList) -> None:
        """The primary session listed ``tools``: its pass-through stamp
        takes their ``Mcp-Param-*`` maps, as the session did its own."""
        if self._call_stamp is not None:
            self._call_stamp.tools_listed(tools)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        credential: Credential | None,
        timeout_seconds: float | None = None,
        progress_callback: ProgressFnT | None = None,
        input_responses: types.InputResponses | None = None,
        request_state: str | None = None,
        relay: CallRelay | None = None,
        legacy: bool = False,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """``relay``: where the server's mid-call questions and log lines go
        (`adapters.mcp_relay`); ``legacy``: the caller speaks 2025-11-25, so
        the call goes over the 2025-11-25 lane when there is one."""
        require_core("the MCP upstream's tools/call")

        async def send(session: ClientSession) -> types.CallToolResult | types.InputRequiredResult:
            through = self._passthrough_for(session)
            if through is not None:
                passthrough, stamp = through
                assert self.spec.url is not None
                answer = await passthrough.call_tool(
                    session,
                    stamp,
                    self.spec.url,
                    name,
                    arguments,
                    credential=CALL_CREDENTIAL.get() or self._auth.default,
                    read_timeout_seconds=timeout_seconds or self._timings.call_seconds,
                    progress_callback=progress_callback,
                    input_responses=input_responses,
                    request_state=request_state,
                    meta=request_meta(session, relay),
                    on_notice=self._on_message,
                )
                if answer is not FALLBACK:
                    assert isinstance(answer, types.CallToolResult | types.InputRequiredResult)
                    return answer
            result = await session.call_tool(
                name,
                dict(arguments) if arguments is not None else None,
                read_timeout_seconds=timeout_seconds or self._timings.call_seconds,
                progress_callback=progress_callback,
                input_responses=input_responses,
                request_state=request_state,
                meta=request_meta(session, relay),
                allow_input_required=True,
            )
            assert isinstance(result, types.CallToolResult | types.InputRequiredResult)
            return result

        return await self.request(
            send,
            credential=credential,
            timeout_seconds=timeout_seconds,
            relay=relay,
            legacy=legacy,
        )

    async def first_tools_page(self, client: Client) -> list[Any] | None:
        """The server's whole listing as JSON when it is one page, read
        through the pass-through on a 2026-07-28 HTTP session; else None
        (then the SDK lists). Any failure is None too -- the SDK's listing
        after it says what is wrong, as it always did -- but the server not
        answering within the call timeout, raised as the SDK's listing
        would raise it after a second wait."""
        through = self._passthrough_for(client.session)
        if through is None or self.spec.url is None:
            return None
        passthrough, stamp = through
        budget = self._timings.call_seconds
        began = time.monotonic()
        try:
            async with asyncio.timeout(budget):
                page = await passthrough.tools_page(
                    client.session,
                    stamp,
                    self.spec.url,
                    credential=self._auth.default,
                    read_timeout_seconds=budget,
                )
        except TimeoutError:
            # The server took the whole budget to list: said now, as the
            # SDK's listing would say it after as long again. A shorter
            # timeout (the pass-through's own pool connecting) is any failure.
            if time.monotonic() - began >= budget:
                raise
            logger.debug("MCP server %s: a raw listing timed out", self.spec.server_id)
            return None
        except Exception:
            logger.debug("MCP server %s: a raw listing failed", self.spec.server_id, exc_info=True)
            return None
        if page is None or page.get("nextCursor") is not None:
            return None
        tools = page.get("tools")
        return tools if isinstance(tools, list) else None

    def _stamp_for(self, client: Client) -> ToolCallStamp | None:
        """The pass-through's stamp for ``client``'s `tools/call`: only a
        2026-07-28 session over HTTP sends them through it."""
        if (
            self._passthrough is None
            or self.spec.transport != "http"
            or client.protocol_version not in MODERN_PROTOCOL_VERSIONS
        ):
            return None
        return ToolCallStamp(client.protocol_version)

    def _passthrough_for(
        self, session: ClientSession
    ) -> tuple[McpPassThrough, ToolCallStamp] | None:
        """The pass-through and the session's stamp, for a call on the
        primary session when that is 2026-07-28 over HTTP (never over the
        2025-11-25 lane, nor stdio): the primary session has a stamp only
        then (`_stamp_for`)."""
        client = self._client
        stamp = self._call_stamp
        if (
            self._passthrough is None
            or stamp is None
            or client is None
            or session is not client.session
        ):
            return None
        return self._passthrough, stamp

    async def request(
        self,
        send: Callable[[ClientSession], Awaitable[T]],
        *,
        credential: Credential | None,
        timeout_seconds: float | None = None,
        relay: CallRelay | None = None,
        legacy: bool = False,
    ) -> T:
        """Any request through the live session (tools, resources, prompts,
        completions): ``send`` makes it. ``credential`` None is the gateway's
        own (listings); ``relay`` and ``legacy`` as for `call_tool`.

        Over the lane, a request whose result does not exist at 2025-11-25
        (the SDK's "Handler returned an invalid result": in practice an
        `InputRequiredResult` from a tool written for 2026-07-28) is sent
        again over the 2026-07-28 session, whose `InputRequiredResult` the
        gateway can put to the caller (`gateway.mcp.input_relay`). Repeating it is
        what multi round-trip requests already require of such a handler: a
        2026-07-28 client re-sends the whole request with its answers. So is
        one the server refused for an unknown session (it did not run it);
        the lane then reconnects for the next call.
        """
        require_core("an MCP upstream's request")
        client, lane = await self._pick(legacy)
        if credential is None:
            credential = await self._default_credential()
        if lane is None:
            own = own_session_for(self.spec.transport, relay, legacy=legacy)
            return await self._send(client, None, send, credential, timeout_seconds, relay, own)
        # Set by the lane's response hook, which runs in this call's context.
        gone: list[bool] = []
        token = LANE_SESSION_GONE.set(gone)
        try:
            return await self._send(client, lane, send, credential, timeout_seconds, relay)
        except UpstreamError as exc:
            if not (gone or not_at_2025(exc)):
                raise
        except UpstreamUnavailable:
            if not gone:
                raise
        finally:
            LANE_SESSION_GONE.reset(token)
        # Not run over the lane (session gone), or not expressible there.
        return await self._send(self._live(), None, send, credential, timeout_seconds, relay)

    async def _send(
        self,
        client: Client,
        lane: LegacyLane | None,
        send: Callable[[ClientSession], Awaitable[T]],
        credential: Credential | None,
        timeout_seconds: float | None,
        relay: CallRelay | None,
        own: bool = False,
    ) -> T:
        """``own``: over a session opened for this call alone (`own_session_for`)."""
        timeout = timeout_seconds or self._timings.call_seconds
        with failed_statuses_noted() as statuses:
            try:
                with call_credential(credential):
                    async with relaying(relay), asyncio.timeout(timeout):
                        if not own:
                            return await send(client.session)
                        # Opened in the call's context: the session's reader,
                        # and what the server asks on it, are this call's.
                        async with open_client(
                            self.spec, self._http, self._auth, on_message=self._on_message,
                            timeout=timeout,
                        ) as alone:  # fmt: skip
                            return await send(alone.session)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"{where(self.spec)} did not answer within {timeout:g}s"
                ) from None
            except Exception as exc:
                raise self._failure(exc, lane, client, statuses) from None

    async def _pick(self, legacy: bool) -> tuple[Client, LegacyLane | None]:
        """The session for a call: the 2025-11-25 lane for a 2025-11-25
        caller when the server has one, else the primary."""
        client = self._live()
        lane = self._lane
        if legacy and lane is not None:
            lane_client = await lane.client()
            if lane_client is not None:
                return lane_client, lane
        return client, None

    def _live(self) -> Client:
        client = self._client
        if client is None:
            detail = f": {self.last_error}" if self.last_error else " yet"
            # Not connected for a reason of the gateway's own: that reason is
            # the cause, for the caller to name (a database outage, say).
            raise UpstreamUnavailable(
                f"{where(self.spec)} is not connected{detail}"
            ) from self.own_failure
        return client

    def _failure(
        self,
        exc: Exception,
        lane: LegacyLane | None = None,
        client: Client | None = None,
        statuses: list[int] | None = None,
    ) -> Exception:
        """Map an exception from a call; a lost session wakes its owner to
        reconnect (the lane's, if the call went over the lane). ``statuses``:
        the server errors (5xx) and 429s the call's requests were answered with."""
        if isinstance(exc, MCPError):
            if exc.code == REQUEST_TIMEOUT:
                return UpstreamTimeout(f"{where(self.spec)}: {exc.error.message}")
            if statuses and exc.code == INTERNAL_ERROR and exc.error.message in HTTP_ERROR_ANSWERS:
                # The SDK's stand-in for an HTTP error with no JSON-RPC body:
                # the server (or its proxy) failed, it did not answer the
                # call. The session itself is not lost.
                status = statuses[-1]
                return UpstreamServerError(f"{where(self.spec)} answered HTTP {status}", status)
            if exc.code != CONNECTION_CLOSED:
                return UpstreamError(exc.code, exc.error.message, exc.error.data)
        if isinstance(exc, UpstreamUnavailable):
            return exc
        if (invalid := malformed(exc)) is not None:
            # A bad answer fails its own call; the session is still up.
            return UpstreamError(INTERNAL_ERROR, f"{where(self.spec)} answered with {invalid}")
        reason = describe(exc)
        if lane is not None:
            lane.lost(reason, client)
        elif client is None or client is self._client:
            # A call that failed on a session since replaced says nothing
            # about the one that replaced it.
            self.last_error = reason
            self._broken.set()
        return UpstreamUnavailable(f"{where(self.spec)}: {reason}")


def request_meta(session: ClientSession, relay: CallRelay | None) -> types.RequestParamsMeta | None:
    """A call's ``_meta``: the caller's log opt-in (`log_opt_in`) and the
    delegation's trace context (`adapters.operations.meta_trace`), which
    also goes over HTTP headers: a server reading either joins the trace."""
    meta: dict[str, Any] = {**(log_opt_in(session, relay) or {}), **meta_trace()}
    return cast(types.RequestParamsMeta, meta) if meta else None


def log_opt_in(session: ClientSession, relay: CallRelay | None) -> types.RequestParamsMeta | None:
    """A 2026-07-28 request gets log lines only if it opts in (``_meta``
    ``io.modelcontextprotocol/logLevel``, MCP 2026-07-28 "Logging"): the
    caller's own opt-in is passed on, and nothing else."""
    if relay is None or session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return None
    level = relay.log_level()
    return cast(types.RequestParamsMeta, {LOG_LEVEL_META_KEY: level}) if level else None
