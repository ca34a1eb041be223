"""`notifications/tools/list_changed` to the MCP clients connected to the gateway.

The two protocol revisions deliver it differently:

* 2026-07-28 has no sessions: a client that wants change notices keeps a
  `subscriptions/listen` request open, and the SDK's `ListenHandler` forwards
  what is published on a `SubscriptionBus` onto it.
* 2025-11-25 has sessions: the notice goes out on the session's standalone
  GET stream, the connection-scoped outbound channel. A handler's
  `ServerSession` is scoped to one request, so what is kept is the session's
  `Connection`, held weakly: the SDK has no "session ended" hook, and the
  connection lives exactly as long as the session's serve loop.

Who may call what is per user, but a change to the registry or the policy can
change anyone's list, so every connected client is told; each one then asks
`tools/list` again and gets its own filtered answer. Notices are coalesced:
a burst of changes (a registration lists many tools) is one notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.subscriptions import InMemorySubscriptionBus, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

logger = logging.getLogger(__name__)
COALESCE_SECONDS = 0.2
SEND_TIMEOUT_SECONDS = 2.0


class ToolListNotifier:
    def __init__(self, coalesce_seconds: float = COALESCE_SECONDS) -> None:
        self.bus = InMemorySubscriptionBus()
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._coalesce = coalesce_seconds
        self._pending: asyncio.Task[None] | None = None

    def remember(self, ctx: ServerRequestContext) -> None:
        """Note a 2025-11-25 session (any request on it will do)."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            # No public accessor on the request-scoped session (mcp 2.3).
            self._connections.add(ctx.session._connection)

    def changed(self) -> None:
        """Schedule one notice to everyone (callable from sync code on the loop)."""
        if self._pending is not None and not self._pending.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (start-up, tests of pure code): nobody to tell
            return
        self._pending = loop.create_task(self._send_later(), name="mcp-list-changed")

    async def _send_later(self) -> None:
        await asyncio.sleep(self._coalesce)
        await self.send()

    async def send(self) -> None:
        await self.bus.publish(ToolsListChanged())
        notice = types.ToolListChangedNotification().model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        for connection in list(self._connections):
            try:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    await connection.outbound.notify(notice["method"], notice.get("params"))
            except Exception as exc:  # a closed session: forget it
                logger.debug("tools/list_changed not delivered: %r", exc)
                self._connections.discard(connection)

    async def aclose(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
