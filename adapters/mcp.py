"""MCP upstreams: one long-lived session per server, Streamable HTTP or stdio.

Each `McpUpstream` owns its `mcp.Client` from one background task (`run()`),
which enters and leaves it: the SDK's client holds anyio task groups, and a
client opened in one task and closed in another (say, a request handler
that caches it) fails with a cancel-scope error (DESIGN.md, known traps).
Calls come from any task and go through that session.

The owner task connects (``mode="auto"``: `server/discover` on 2026-07-28
servers, the `initialize` handshake on older ones), lists the tools, hands
them to ``on_tools``, then probes the server every ``probe_seconds`` with a
fresh listing -- which is also how a changed tool definition is noticed,
told or not (a page as it was is not checked again: `_list_and_report`). A
failed probe or a call that finds the session gone closes it; the task then
reconnects with exponential backoff, and a stdio server is started again (a
dead process ends its session). ``on_health`` hears every transition.
A 2026-07-28 server tells of list changes on a `subscriptions/listen`
stream kept open beside the session (`adapters.mcp_listen`).

Upstream calls forward progress notifications (``progress_callback``) and
return an `InputRequiredResult` (MRTR, 2026-07-28) to the caller instead of
resolving it here: the gateway has no user to ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.client.session import IncomingMessage

from adapters.errors import (
    OwnFailure,
    UpstreamError,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from adapters.mcp_calls import UpstreamCalls
from adapters.mcp_client import (
    Connected,
    CredentialSource,
    HttpFactory,
    ListKind,
    OnHealth,
    OnListChanged,
    OnNotice,
    OnTools,
    ToolList,
    UpstreamSpec,
    UpstreamTimings,
    connected_of,
    discover,
    is_modern,
    list_all_tools,
    listing_of,
    open_client,
)
from adapters.mcp_http import UpstreamAuth
from adapters.mcp_lane import LegacyLane, lane_for
from adapters.mcp_listen import listen_for_changes
from adapters.mcp_passthrough import McpPassThrough
from adapters.mcp_results import malformed
from adapters.mcp_stamp import ToolCallStamp
from adapters.mcp_upstream_errors import describe, own_part

# What the rest of the gateway imports from here (the parts moved to
# mcp_client, mcp_lane and mcp_upstream_errors keep their old address).
__all__ = [
    "Connected",
    "CredentialSource",
    "HttpFactory",
    "LegacyLane",
    "ListKind",
    "McpUpstream",
    "OnHealth",
    "OnListChanged",
    "OnNotice",
    "OnTools",
    "ToolList",
    "UpstreamError",
    "UpstreamServerError",
    "UpstreamSpec",
    "UpstreamTimeout",
    "UpstreamTimings",
    "UpstreamUnavailable",
    "discover",
    "is_modern",
    "list_all_tools",
    "open_client",
]

logger = logging.getLogger(__name__)


class McpUpstream(UpstreamCalls):
    """One server's session, kept open (and reopened) by ``run()``; its calls
    (listing, `tools/call`, any request) are `UpstreamCalls`'."""

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
        self._call_stamp: ToolCallStamp | None = None
        self._broken = asyncio.Event()
        self._relist = asyncio.Event()
        self._ready = asyncio.Event()
        # Set once the first attempt to connect has ended, either way.
        self._first_attempt = asyncio.Event()
        self._stopping = False
        self.connected: Connected | None = None
        self.last_error: str | None = None
        self.own_failure: BaseException | None = None
        # Told of the server's notices for the gateway's clients (a resource
        # updated); called on the event loop, must not block.
        self.notice_listeners: list[OnNotice] = []
        # Told when the server says its tools (after they are listed again)
        # or prompts changed; called on the event loop, must not block.
        self.list_listeners: list[OnListChanged] = []
        self._announce_tools = False
        self._listed: ToolList | None = None  # the last listing handed on
        self._page: list[Any] | None = None  # its first page as JSON, if read so
        # The session whose SDK listed the tools last: only it may take a
        # page for its listing (a session that never listed through its SDK
        # has not taken the tools' definitions in, which its calls need).
        self._listed_by: Client | None = None
        self.probes_unchanged = 0  # probes that found that page as it was

    @property
    def ready(self) -> bool:
        return self._client is not None

    @property
    def capabilities(self) -> types.ServerCapabilities | None:
        """What the connected server declared (None while not connected)."""
        client = self._client
        return client.server_capabilities if client is not None else None

    async def wait_ready(self, seconds: float) -> bool:
        """Wait for the first attempt to connect to end (at most ``seconds``);
        whether it connected. A first attempt that fails ends the wait: a
        server that needs each user's own credential (no connected account
        for the gateway's own requests yet) made its registration wait the
        whole ``seconds`` for a connection that could not come."""
        if self._client is None and self.last_error is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._first_attempt.wait()
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
                own = isinstance(exc, OwnFailure)
                self.last_error = str(exc) if own else describe(exc)
                self.own_failure = exc if own else None
                self._first_attempt.set()
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
        self._auth.default = await own_part(self._default_credential())
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
            self._call_stamp = self._stamp_for(client)  # before the first listing
            lane = self._lane_for(client, timeout)
            lane_task = asyncio.create_task(lane.run()) if lane is not None else None
            try:
                self.connected = connected_of(client)
                try:
                    await self._list_and_report(client)
                except OwnFailure as exc:
                    # The server listed its tools; the gateway could not take
                    # them in now. The next probe reports them again.
                    self._kept(exc)
                self._client = client
                self._lane = lane
                self.last_error = None
                self.own_failure = None
                self._ready.set()
                self._first_attempt.set()
                try:
                    await own_part(self._on_health(True, None, self.connected))
                except OwnFailure as exc:
                    self._kept(exc)
                listening = asyncio.create_task(self._listen(client)) if is_modern(client) else None
                try:
                    await self._serve(client)
                finally:
                    if listening is not None:
                        listening.cancel()
                        await asyncio.wait({listening}, timeout=timeout)
            finally:
                self._client = None
                self._listed_by = None
                self._call_stamp = None
                self._lane = None
                self._ready.clear()
                if lane is not None and lane_task is not None:
                    # The lane leaves its client in its own task; wait for
                    # that (not for ever: anyio may absorb the cancel).
                    lane.stop()
                    lane_task.cancel()
                    await asyncio.wait({lane_task}, timeout=timeout)

    def _lane_for(self, client: Client, timeout: float) -> LegacyLane | None:
        return lane_for(
            client, self.spec, self._http, self._auth, on_message=self._on_message,
            timings=self._timings, per_caller=self._per_caller_credentials, timeout=timeout,
        )  # fmt: skip

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
            probe = not self._relist.is_set()  # its time came; nobody asked
            self._relist.clear()
            announce, self._announce_tools = self._announce_tools, False
            try:
                await self._list_and_report(client, probe=probe)
            except OwnFailure as exc:
                self._kept(exc)  # the gateway's failure: the session is fine
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
        """The list changes a 2026-07-28 server tells of on its
        `subscriptions/listen` stream (`adapters.mcp_listen`)."""
        await listen_for_changes(
            client,
            server_id=self.spec.server_id,
            timings=self._timings,
            stopping=lambda: self._stopping,
            on_tools=self._tools_changed,
            on_prompts=lambda: self._announce("prompts"),
        )

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

    async def _list_and_report(self, client: Client, *, probe: bool = False) -> None:
        """List the tools and hand them on. A probe reads the page as JSON
        first: the same page as at the last listing is the same listing, and
        the SDK's listing of a thousand tools (tens of ms on the event loop,
        and a session's worth of cyclic garbage) is skipped; any other
        answer is listed through the SDK. Either way the listing is handed
        on (its hearers mark when it was listed)."""
        self._auth.default = await own_part(self._default_credential())
        page = await self.first_tools_page(client) if probe else None
        held = self._listed
        made = None if page is None else self._page_listing(page)
        if held is not None and made is held and self._listed_by is client:
            self.probes_unchanged += 1
            tools = held
        else:
            async with asyncio.timeout(self._timings.call_seconds):
                tools = await list_all_tools(client)
            self._listed_by = client
            if made != tools:
                page = None  # another answer than the page (it changed meanwhile)
        if tools == self._listed:
            # A probe's usual answer, compared here once: handed on as the
            # listing already held, its hearers compare it by identity.
            tools = self._listed
        self._listed, self._page = tools, page  # one answer's, or no page
        self._tools_listed(tools)
        await own_part(self._on_tools(tools))

    def _page_listing(self, page: list[Any]) -> ToolList | None:
        """The listing ``page`` makes (None: not a list of tools), worked
        out once a probe: the listing held itself when ``page`` is the page
        the last probe read, or -- when the last listing read none (a
        session's first, one after the server said its tools changed) --
        when it makes that same listing; else a listing of its own.
        (`listing_of` validates each tool as the SDK's listing does; a tool
        that listing leaves out, for a header it refuses, stays in: such a
        page never makes the SDK's listing.)"""
        if self._page is not None and page == self._page:
            return self._listed
        made = listing_of(page)
        if self._page is None and made is not None and made == self._listed:
            return self._listed
        return made

    def _kept(self, failure: OwnFailure) -> None:
        logger.warning(
            "MCP server %s: kept connected; the gateway's own part failed: %s",
            self.spec.server_id,
            failure,
        )

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
