"""MCP upstreams: one long-lived session per server, Streamable HTTP or stdio.

Each `McpUpstream` owns its `mcp.Client` from one background task (`run()`),
which enters and leaves it: the SDK's client holds anyio task groups, and a
client opened in one task and closed in another (say, a request handler
that caches it) fails with a cancel-scope error (DESIGN.md, known traps).
Calls come from any task and go through that session.

The owner task connects (``mode="auto"``: `server/discover` on 2026-07-28
servers, the `initialize` handshake on older ones), lists the tools, hands
them to ``on_tools``, then probes the server every ``probe_seconds`` with a
fresh listing -- which is also how a changed tool definition is noticed. A
failed probe or a call that finds the session gone closes it; the task then
reconnects with exponential backoff, and a stdio server is started again (a
dead process ends its session). ``on_health`` hears every transition.

Upstream calls forward progress notifications (``progress_callback``) and
return an `InputRequiredResult` (MRTR, 2026-07-28) to the caller instead of
resolving it here: the gateway has no user to ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import aiohttp
import httpx2
import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client._transport import TransportStreams
from mcp.client.session import ClientSession, IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import PromptsListChanged, ToolsListChanged
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    LOG_LEVEL_META_KEY,
    METHOD_NOT_FOUND,
    REQUEST_TIMEOUT,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from adapters.mcp_http import (
    CALL_CREDENTIAL,
    Credential,
    UpstreamAuth,
    call_credential,
    connect_failure,
)
from adapters.mcp_passthrough import FALLBACK, McpPassThrough
from adapters.mcp_relay import (
    Callbacks,
    CallRelay,
    Source,
    on_log,
    relaying,
    stamp_caller_capabilities,
)
from adapters.mcp_results import lenient_results, malformed

logger = logging.getLogger(__name__)

ToolList = list[dict[str, Any]]
T = TypeVar("T")
_MAX_PAGES = 100  # a paginator that never ends cannot hang a listing


class UpstreamUnavailable(Exception):
    """The server cannot be reached now (not connected, connection lost, refused)."""


class UpstreamTimeout(UpstreamUnavailable):
    """The server did not answer within the deadline."""


class UpstreamError(Exception):
    """The server answered the call with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True)
class UpstreamSpec:
    server_id: str
    transport: Literal["http", "stdio"]
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Connected:
    """What the owner task learned on connecting."""

    protocol_version: str
    server_info: dict[str, Any] | None


@dataclass(frozen=True)
class UpstreamTimings:
    connect_seconds: float = 10.0
    probe_seconds: float = 30.0
    call_seconds: float = 30.0
    reconnect_min_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0


HttpFactory = Callable[[UpstreamAuth], httpx2.AsyncClient]
CredentialSource = Callable[[], Awaitable[Credential | None]]
OnTools = Callable[[ToolList], Awaitable[None]]
OnHealth = Callable[[bool, str | None, Connected | None], Awaitable[None]]
OnNotice = Callable[[types.ResourceUpdatedNotification], None]
ListKind = Literal["tools", "prompts"]
OnListChanged = Callable[[ListKind], None]


def open_client(
    spec: UpstreamSpec,
    http: HttpFactory,
    auth: UpstreamAuth,
    *,
    on_message: Any = None,
    timeout: float,
    mode: Literal["auto", "legacy"] = "auto",
) -> Client:
    """An (unentered) SDK client for ``spec``; ``auth`` adds the credential.

    Its callbacks relay what the server asks or logs mid-call to the caller
    of that call (`adapters.mcp_relay`); with no such caller they refuse.
    """
    if spec.transport == "http":
        assert spec.url is not None
        transport: Any = _http_transport(spec.url, http(auth))
    else:
        assert spec.command is not None
        # The child gets the SDK's safe environment (PATH, HOME, ...), never
        # the gateway's own (which holds SWITCHBOARD_SECRET_KEY).
        transport = StdioServerParameters(command=spec.command, args=list(spec.args))
    callbacks = Callbacks(Source(_where(spec), spec.transport))
    return Client(
        transport,
        read_timeout_seconds=timeout,
        message_handler=on_message,
        elicitation_callback=callbacks.elicitation,
        sampling_callback=callbacks.sampling,
        list_roots_callback=callbacks.list_roots,
        logging_callback=on_log,
        client_info=types.Implementation(name="switchboard", version="0.1.0"),
        cache=None,  # every listing must reach the server: it is how changes are seen
        mode=mode,
    )


def is_modern(client: Client) -> bool:
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS


@contextlib.asynccontextmanager
async def _http_transport(url: str, http: httpx2.AsyncClient) -> AsyncIterator[TransportStreams]:
    """Streamable HTTP over ``http``, which lives exactly as long as the session."""
    async with (
        http,
        streamable_http_client(url, http_client=http, terminate_on_close=True) as streams,
    ):
        yield streams


async def list_all_tools(client: Client) -> ToolList:
    tools: ToolList = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
        tools.extend(
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools
        )
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


async def discover(
    spec: UpstreamSpec, http: HttpFactory, credential: Credential | None, *, deadline: float
) -> tuple[Connected, ToolList]:
    """Connect once, list the tools, disconnect (registration's probe).

    Opened and closed in the calling task, so it is safe in a request handler.
    """
    auth = UpstreamAuth()
    auth.default = credential
    try:
        async with (
            asyncio.timeout(deadline),
            open_client(spec, http, auth, timeout=deadline) as client,
        ):
            lenient_results(client.session)
            return _connected(client), await list_all_tools(client)
    except TimeoutError:
        raise UpstreamTimeout(f"{_where(spec)} did not answer within {deadline:g}s") from None
    except MCPError as exc:
        raise UpstreamUnavailable(f"{_where(spec)}: {_not_mcp(exc)}") from None
    except Exception as exc:  # the SDK and transports raise many kinds; all mean "unreachable"
        raise UpstreamUnavailable(f"{_where(spec)}: {_describe(exc)}") from None


class McpUpstream:
    """One server's session, kept open (and reopened) by ``run()``."""

    def __init__(
        self,
        spec: UpstreamSpec,
        http: HttpFactory,
        *,
        default_credential: CredentialSource,
        on_tools: OnTools,
        on_health: OnHealth,
        timings: UpstreamTimings,
        per_caller_credentials: bool = False,
        passthrough: McpPassThrough | None = None,
    ) -> None:
        """``per_caller_credentials``: each call carries its user's own token
        (token exchange), so a session the gateway opened is not one to send
        them all over: no 2025-11-25 lane (see `LegacyLane`). ``passthrough``:
        sends `tools/call` on a 2026-07-28 HTTP session itself
        (`adapters.mcp_passthrough`); without it every call uses the SDK."""
        self.spec = spec
        self._passthrough = passthrough
        self._per_caller_credentials = per_caller_credentials
        self._http = http
        self._default_credential = default_credential
        self._on_tools = on_tools
        self._on_health = on_health
        self._timings = timings
        self._auth = UpstreamAuth()
        self._client: Client | None = None
        self._lane: LegacyLane | None = None
        self._broken = asyncio.Event()
        self._relist = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False
        self.connected: Connected | None = None
        self.last_error: str | None = None
        # Told of the server's notices for the gateway's clients (a resource
        # updated); called on the event loop, must not block.
        self.notice_listeners: list[OnNotice] = []
        # Told when the server says its tools (after they are listed again)
        # or prompts changed; called on the event loop, must not block.
        self.list_listeners: list[OnListChanged] = []
        self._announce_tools = False

    @property
    def ready(self) -> bool:
        return self._client is not None

    @property
    def capabilities(self) -> types.ServerCapabilities | None:
        """What the connected server declared (None while not connected)."""
        client = self._client
        return client.server_capabilities if client is not None else None

    async def wait_ready(self, seconds: float) -> bool:
        """Wait for the first connection (only while no attempt has failed yet)."""
        if self._client is None and self.last_error is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._ready.wait()
        return self.ready

    def stop(self) -> None:
        """Make ``run()`` end: the flag holds even if the SDK's cancel scopes
        absorb the task's cancellation (which anyio may do mid-teardown)."""
        self._stopping = True
        self._broken.set()

    async def run(self) -> None:
        """Connect, serve, reconnect -- until cancelled or stopped."""
        delay = self._timings.reconnect_min_seconds
        while not self._stopping:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = _describe(exc)
            if self._stopping:
                return
            self._client = None
            self.connected = None
            logger.info("MCP server %s disconnected: %s", self.spec.server_id, self.last_error)
            with contextlib.suppress(Exception):
                await self._on_health(False, self.last_error, None)
            # Full jitter, so replicas do not all knock at once after an outage.
            await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311
            delay = min(delay * 2, self._timings.reconnect_max_seconds)

    async def _session(self) -> None:
        self._broken.clear()
        timeout = self._timings.connect_seconds
        # Requests the transport makes on its own (a GET stream, the closing
        # DELETE) carry this default; a call's own credential overrides it.
        self._auth.default = await self._default_credential()
        # Entered and left in this task, in one block: the SDK's task groups
        # must see the exception that ends the session where it happens.
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(timeout):
                client = await stack.enter_async_context(
                    open_client(
                        self.spec,
                        self._http,
                        self._auth,
                        on_message=self._on_message,
                        timeout=timeout,
                    )
                )
            lenient_results(client.session)
            lane = self._lane_for(client, timeout)
            lane_task = asyncio.create_task(lane.run()) if lane is not None else None
            try:
                self.connected = _connected(client)
                await self._list_and_report(client)
                self._client = client
                self._lane = lane
                self.last_error = None
                self._ready.set()
                await self._on_health(True, None, self.connected)
                listening = asyncio.create_task(self._listen(client)) if is_modern(client) else None
                try:
                    await self._serve(client)
                finally:
                    if listening is not None:
                        listening.cancel()
                        await asyncio.wait({listening}, timeout=timeout)
            finally:
                self._client = None
                self._lane = None
                self._ready.clear()
                if lane is not None and lane_task is not None:
                    # The lane leaves its client in its own task; wait for
                    # that (not for ever: anyio may absorb the cancel).
                    lane.stop()
                    lane_task.cancel()
                    await asyncio.wait({lane_task}, timeout=timeout)

    def _lane_for(self, client: Client, timeout: float) -> LegacyLane | None:
        """On a 2026-07-28 session: stamp callers' capabilities, and (over
        HTTP) keep a 2025-11-25 lane ready for 2025-11-25 callers. Over stdio
        a server's mid-call requests cannot be told apart by caller (one
        reader), so there is no lane: they are refused."""
        if not is_modern(client):
            return None
        stamp_caller_capabilities(client.session)
        if self.spec.transport != "http" or self._per_caller_credentials:
            return None

        def http_watched(auth: UpstreamAuth) -> httpx2.AsyncClient:
            http = self._http(auth)
            http.event_hooks["response"] = [*http.event_hooks["response"], lane.saw_response]
            return http

        def open_lane() -> Client:
            return open_client(
                self.spec,
                http_watched,
                self._auth,
                on_message=self._on_message,
                timeout=timeout,
                mode="legacy",
            )

        lane = LegacyLane(open_lane, self._timings)
        return lane

    async def _serve(self, client: Client) -> None:
        while True:
            broken = asyncio.create_task(self._broken.wait())
            relist = asyncio.create_task(self._relist.wait())
            try:
                await asyncio.wait(
                    {broken, relist},
                    timeout=self._timings.probe_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                broken.cancel()
                relist.cancel()
            if self._broken.is_set():
                raise UpstreamUnavailable(self.last_error or "the session was lost")
            self._relist.clear()
            announce, self._announce_tools = self._announce_tools, False
            try:
                await self._list_and_report(client)
            except Exception as exc:
                if (invalid := malformed(exc)) is None:
                    raise
                # A bad listing is not a lost session: the last good one stands.
                where = self.spec.server_id
                logger.warning("MCP server %s listed its tools with %s", where, invalid)
            if announce:
                # Told even when nothing changed for the gateway (a tool added
                # and removed again): clients list again and see for themselves.
                self._announce("tools")

    async def _listen(self, client: Client) -> None:
        """A 2026-07-28 server tells of changes only on a `subscriptions/listen`
        stream (SEP-2575): keep one open for the tool and prompt list changes
        it declares, for as long as the session lives. A stream that drops
        once open (a read timeout of a silent stream, say) is opened again at
        once; one that cannot be opened is tried again with backoff (up to
        ``probe_seconds``: the probe catches what is missed meanwhile); a
        server that does not serve it is not asked again on this session.
        Never ends the session."""
        capabilities = client.server_capabilities
        tools = bool(capabilities and capabilities.tools and capabilities.tools.list_changed)
        prompts = bool(capabilities and capabilities.prompts and capabilities.prompts.list_changed)
        if not (tools or prompts):
            return
        shortest = self._timings.reconnect_min_seconds
        delay = shortest
        while not self._stopping:
            opened = False
            try:
                async with client.listen(
                    tools_list_changed=tools, prompts_list_changed=prompts
                ) as subscription:
                    opened = True
                    async for event in subscription:
                        if isinstance(event, ToolsListChanged):
                            self._tools_changed()
                        elif isinstance(event, PromptsListChanged):
                            self._announce("prompts")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, MCPError) and exc.code == METHOD_NOT_FOUND:
                    return
                logger.debug(
                    "MCP server %s: subscriptions/listen ended: %s",
                    self.spec.server_id,
                    _describe(exc),
                )
            if opened:
                delay = shortest
                await asyncio.sleep(min(shortest, 0.1))
            else:
                await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311
                delay = min(delay * 2, self._timings.probe_seconds)

    def _tools_changed(self) -> None:
        """The server says its tools changed: list them again, then tell."""
        self._announce_tools = True
        self._relist.set()

    def _announce(self, kind: ListKind) -> None:
        for listener in list(self.list_listeners):
            try:
                listener(kind)
            except Exception:
                logger.exception("list_changed listener of %s raised", self.spec.server_id)

    async def _list_and_report(self, client: Client) -> None:
        self._auth.default = await self._default_credential()
        async with asyncio.timeout(self._timings.call_seconds):
            tools = await list_all_tools(client)
        await self._on_tools(tools)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._tools_changed()
        elif isinstance(message, types.PromptListChangedNotification):
            self._announce("prompts")
        elif isinstance(message, types.ResourceUpdatedNotification):
            for listener in list(self.notice_listeners):
                listener(message)

    def request_relist(self) -> None:
        """Re-list the tools now (after an admin's refresh on another replica, say)."""
        self._relist.set()

    async def list_tools(self) -> ToolList:
        """A fresh listing through the live session."""
        client = self._live()
        self._auth.default = await self._default_credential()
        try:
            async with asyncio.timeout(self._timings.call_seconds):
                return await list_all_tools(client)
        except Exception as exc:
            raise self._failure(exc, client=client) from None

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

        async def send(session: ClientSession) -> types.CallToolResult | types.InputRequiredResult:
            passthrough = self._passthrough_for(session)
            if passthrough is not None:
                assert self.spec.url is not None
                answer = await passthrough.call_tool(
                    session,
                    self.spec.url,
                    name,
                    arguments,
                    credential=CALL_CREDENTIAL.get() or self._auth.default,
                    read_timeout_seconds=timeout_seconds or self._timings.call_seconds,
                    progress_callback=progress_callback,
                    input_responses=input_responses,
                    request_state=request_state,
                    meta=_log_opt_in(session, relay),
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
                meta=_log_opt_in(session, relay),
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

    def _passthrough_for(self, session: ClientSession) -> McpPassThrough | None:
        """The pass-through, for a call on the primary session when that is
        2026-07-28 over HTTP (never over the 2025-11-25 lane, nor stdio)."""
        client = self._client
        if (
            self._passthrough is None
            or self.spec.transport != "http"
            or client is None
            or session is not client.session
            or session.protocol_version not in MODERN_PROTOCOL_VERSIONS
        ):
            return None
        return self._passthrough

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
        client, lane = await self._pick(legacy)
        if credential is None:
            credential = await self._default_credential()
        if lane is None:
            return await self._send(client, None, send, credential, timeout_seconds, relay)
        # Set by the lane's response hook, which runs in this call's context.
        gone: list[bool] = []
        token = _LANE_SESSION_GONE.set(gone)
        try:
            return await self._send(client, lane, send, credential, timeout_seconds, relay)
        except UpstreamError as exc:
            if not (gone or _not_at_2025(exc)):
                raise
        except UpstreamUnavailable:
            if not gone:
                raise
        finally:
            _LANE_SESSION_GONE.reset(token)
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
    ) -> T:
        timeout = timeout_seconds or self._timings.call_seconds
        try:
            with call_credential(credential):
                async with relaying(relay), asyncio.timeout(timeout):
                    return await send(client.session)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{_where(self.spec)} did not answer within {timeout:g}s"
            ) from None
        except Exception as exc:
            raise self._failure(exc, lane, client) from None

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
            raise UpstreamUnavailable(f"{_where(self.spec)} is not connected{detail}")
        return client

    def _failure(
        self, exc: Exception, lane: LegacyLane | None = None, client: Client | None = None
    ) -> Exception:
        """Map an exception from a call; a lost session wakes its owner to
        reconnect (the lane's, if the call went over the lane)."""
        if isinstance(exc, MCPError):
            if exc.code == REQUEST_TIMEOUT:
                return UpstreamTimeout(f"{_where(self.spec)}: {exc.error.message}")
            if exc.code != CONNECTION_CLOSED:
                return UpstreamError(exc.code, exc.error.message, exc.error.data)
        if isinstance(exc, UpstreamUnavailable):
            return exc
        if (invalid := malformed(exc)) is not None:
            # A bad answer fails its own call; the session is still up.
            return UpstreamError(INTERNAL_ERROR, f"{_where(self.spec)} answered with {invalid}")
        reason = _describe(exc)
        if lane is not None:
            lane.lost(reason, client)
        elif client is None or client is self._client:
            # A call that failed on a session since replaced says nothing
            # about the one that replaced it.
            self.last_error = reason
            self._broken.set()
        return UpstreamUnavailable(f"{_where(self.spec)}: {reason}")


# A call over the lane: did the server answer it "no such session"?
_LANE_SESSION_GONE: ContextVar[list[bool] | None] = ContextVar("lane_session_gone", default=None)


class LegacyLane:
    """A 2025-11-25 session to a server the primary session reaches at 2026-07-28.

    A tool written for 2025-11-25 may ask its caller mid-call (`ctx.elicit`,
    `create_message`) or log to it; over a 2026-07-28 connection there is no
    channel for either (MCP 2026-07-28 replaced them with `InputRequiredResult`
    and per-request logging), so the tool fails or stays silent. A
    2025-11-25 caller's calls therefore go over this session, on which the
    server asks on the call's own stream and `adapters.mcp_relay` routes it
    back. Opened on first use (no cost for servers only 2026-07-28 callers
    use), from its own task (`run()`, which enters and leaves the client);
    a server that refuses the handshake (2026-07-28 only) is not asked again
    for ``probe_seconds``, and callers meanwhile use the primary session.

    Only a server that keeps sessions (answers with an ``Mcp-Session-Id``)
    gets a lane: a stateless one cannot take the answer to its own mid-call
    request (it arrives in a new POST, which no session links to the call),
    nor a 2025-11-25 cancellation, which the 2026-07-28 session delivers by
    closing the call's stream. Such a server's callers all use the primary.
    Nor does a server that gets each user's own token (token exchange): it
    may bind a session to the principal that opened it (as the gateway's own
    `/mcp` does), and the lane is opened once for every caller.
    """

    def __init__(self, open_lane: Callable[[], Client], timings: UpstreamTimings) -> None:
        self._open = open_lane
        self._timings = timings
        self._wanted = asyncio.Event()
        self._broken = asyncio.Event()
        self._attempt: asyncio.Event | None = None
        self._client: Client | None = None
        self._retry_at = 0.0
        self._stopping = False
        self._session_id: str | None = None  # of the session being opened or live
        self._stateless = False
        self.last_error: str | None = None

    async def saw_response(self, response: httpx2.Response) -> None:
        """An httpx2 response hook on the lane's client: notes that the
        server keeps sessions, and that it no longer knows ours (404 to a
        request that named it, MCP 2025-11-25 "Session Management" 4): the
        call that met it was not run, and the lane must start afresh."""
        session_id = response.headers.get("mcp-session-id")
        if session_id and self._session_id is None:
            self._session_id = session_id  # the handshake's: this connection's session
        named = response.request.headers.get("mcp-session-id")
        if response.status_code == 404 and named:
            gone = _LANE_SESSION_GONE.get()
            # Only the call's own request was not run: the call's context also
            # posts the replies to the server's questions and cancellations,
            # and a 404 to those comes while (or after) the call ran.
            if gone is not None and _posts_a_request(response.request):
                gone.append(True)
            # A late 404 to an older session's request says nothing of this one.
            if named == self._session_id:
                self._lose("the server ended the 2025-11-25 session")

    async def client(self) -> Client | None:
        """The live lane, connecting it first if need be; None if it cannot be had."""
        if self._client is not None:
            return self._client
        if self._stopping or self._stateless:
            return None
        if asyncio.get_running_loop().time() < self._retry_at:
            return None
        if self._attempt is None:
            self._attempt = asyncio.Event()
            self._wanted.set()
        attempt = self._attempt
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timings.connect_seconds):
                await attempt.wait()
        return self._client

    def lost(self, reason: str, client: Client | None) -> None:
        """A call over ``client`` found the session gone: no new call picks
        it; the owner leaves it, and the next caller gets a fresh one. A call
        that failed on an older session (it may fail after that session was
        replaced) changes nothing."""
        if client is not None and client is self._client:
            self._lose(reason)

    def _lose(self, reason: str) -> None:
        self.last_error = reason
        self._client = None
        self._broken.set()

    def stop(self) -> None:
        self._stopping = True
        self._broken.set()
        self._wanted.set()

    async def run(self) -> None:
        while not self._stopping:
            await self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            attempt = self._attempt  # the callers this connection answers
            self._session_id = None
            self._broken.clear()
            opened = False
            try:
                async with contextlib.AsyncExitStack() as stack:
                    async with asyncio.timeout(self._timings.connect_seconds):
                        client = await stack.enter_async_context(self._open())
                    if self._session_id is None:
                        self._stateless = True
                        return
                    if self._stopping:
                        return
                    self._client = client
                    opened = True
                    self._settle(attempt)
                    await self._broken.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Leaving a lost session may fail too; only a failure to
                # open one keeps callers on the primary for a while.
                if not opened:
                    self.last_error = _describe(exc)
                    self._retry_at = asyncio.get_running_loop().time() + self._timings.probe_seconds
                    logger.info("2025-11-25 lane to an MCP server unavailable: %s", self.last_error)
            finally:
                self._client = None
                self._broken.clear()
                self._settle(attempt)

    def _settle(self, attempt: asyncio.Event | None) -> None:
        if attempt is not None:
            attempt.set()
            if self._attempt is attempt:
                self._attempt = None


def _log_opt_in(session: ClientSession, relay: CallRelay | None) -> types.RequestParamsMeta | None:
    """A 2026-07-28 request gets log lines only if it opts in (``_meta``
    ``io.modelcontextprotocol/logLevel``, MCP 2026-07-28 "Logging"): the
    caller's own opt-in is passed on, and nothing else."""
    if relay is None or session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return None
    level = relay.log_level()
    return cast(types.RequestParamsMeta, {LOG_LEVEL_META_KEY: level}) if level else None


def _posts_a_request(request: httpx2.Request) -> bool:
    """Whether ``request`` POSTs a JSON-RPC request (not a reply or a notification)."""
    if request.method != "POST":
        return False
    try:
        message = json.loads(request.content)
    except (httpx2.RequestNotRead, ValueError):
        return False
    return isinstance(message, dict) and "method" in message and "id" in message


def _not_at_2025(exc: UpstreamError) -> bool:
    """The SDK server's answer when a handler's result has no 2025-11-25 form."""
    return exc.code == INTERNAL_ERROR and exc.message == "Handler returned an invalid result"


def _connected(client: Client) -> Connected:
    info = client.server_info
    return Connected(
        protocol_version=client.protocol_version,
        server_info=info.model_dump(mode="json", exclude_none=True) if info else None,
    )


def _where(spec: UpstreamSpec) -> str:
    return f"MCP server {spec.server_id}"


# What the SDK's Streamable HTTP client makes of an HTTP error answer that is
# not JSON-RPC (mcp/client/streamable_http.py): it keeps no status code.
_HTTP_ERROR_ANSWERS = ("Not Found", "Server returned an error response")


def _not_mcp(exc: MCPError) -> str:
    message = exc.error.message
    if message in _HTTP_ERROR_ANSWERS:
        return (
            f"it answered an MCP request with an HTTP error ({message}), not JSON-RPC: "
            "is this the server's Streamable HTTP endpoint (often ending in /mcp)?"
        )
    return message


def _describe(exc: BaseException) -> str:
    """A short, safe description: the innermost error of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return _not_mcp(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_failure(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
