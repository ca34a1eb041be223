"""The 2025-11-25 lane beside a 2026-07-28 session to the same MCP server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import httpx2
from mcp import Client
from mcp.client.session import IncomingMessage

from adapters.mcp_client import HttpFactory, UpstreamSpec, UpstreamTimings, is_modern, open_client
from adapters.mcp_http import UpstreamAuth
from adapters.mcp_upstream_errors import describe

logger = logging.getLogger(__name__)


# A call over the lane: did the server answer it "no such session"?
LANE_SESSION_GONE: ContextVar[list[bool] | None] = ContextVar("lane_session_gone", default=None)


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
            gone = LANE_SESSION_GONE.get()
            # Only the call's own request was not run: the call's context also
            # posts the replies to the server's questions and cancellations,
            # and a 404 to those comes while (or after) the call ran.
            if gone is not None and posts_a_request(response.request):
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
                    self.last_error = describe(exc)
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


def posts_a_request(request: httpx2.Request) -> bool:
    """Whether ``request`` POSTs a JSON-RPC request (not a reply or a notification)."""
    if request.method != "POST":
        return False
    try:
        message = json.loads(request.content)
    except (httpx2.RequestNotRead, ValueError):
        return False
    return isinstance(message, dict) and "method" in message and "id" in message


def lane_for(
    client: Client,
    spec: UpstreamSpec,
    http: HttpFactory,
    auth: UpstreamAuth,
    *,
    on_message: Callable[[IncomingMessage], Awaitable[None]],
    timings: UpstreamTimings,
    per_caller: bool,
    timeout: float,
) -> LegacyLane | None:
    """On a 2026-07-28 session over HTTP: a 2025-11-25 lane kept ready
    for 2025-11-25 callers (callers' capabilities are stamped by the
    session's transport, `adapters.mcp_wire`). Over stdio a server's
    mid-call requests cannot be told apart by caller (one reader), so
    there is no lane: they are refused. Nor with ``per_caller`` credentials
    (`McpUpstream`: a session the gateway opened is not one to send them all over)."""
    if not is_modern(client):
        return None
    if spec.transport != "http" or per_caller:
        return None

    def http_watched(lane_auth: UpstreamAuth) -> httpx2.AsyncClient:
        watched = http(lane_auth)
        watched.event_hooks["response"] = [*watched.event_hooks["response"], lane.saw_response]
        return watched

    def open_lane() -> Client:
        return open_client(
            spec, http_watched, auth, on_message=on_message, timeout=timeout, mode="legacy"
        )

    lane = LegacyLane(open_lane, timings)
    return lane
