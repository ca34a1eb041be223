"""`notifications/tools/list_changed` and `notifications/prompts/list_changed`
to the MCP clients connected to the gateway.

The two protocol revisions deliver it differently:

* 2026-07-28 has no sessions: a client that wants change notices keeps a
  `subscriptions/listen` request open, and the SDK's `ListenHandler` forwards
  what is published on a `SubscriptionBus` onto it.
* 2025-11-25 has sessions: the notice goes out on the session's standalone
  GET stream, the connection-scoped outbound channel. A handler's
  `ServerSession` is scoped to one request, so what is kept is the session's
  `Connection`, held weakly: the SDK has no "session ended" hook, and the
  connection lives exactly as long as the session's serve loop.

A server the gateway federates that says its tools or prompts changed
(`McpUpstream.list_listeners`) is relayed the same way, even if nothing
changed for the gateway: clients list again and see for themselves.

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
from collections.abc import Callable

import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

logger = logging.getLogger(__name__)
COALESCE_SECONDS = 0.2
SEND_TIMEOUT_SECONDS = 2.0

Kind = str  # "tools" or "prompts"
_NOTICES: dict[Kind, tuple[Callable[[], ServerEvent], str]] = {
    "tools": (ToolsListChanged, types.ToolListChangedNotification().method),
    "prompts": (PromptsListChanged, types.PromptListChangedNotification().method),
}


class ToolListNotifier:
    def __init__(self, coalesce_seconds: float = COALESCE_SECONDS) -> None:
        self.bus = InMemorySubscriptionBus()
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._coalesce = coalesce_seconds
        self._pending: dict[Kind, asyncio.Task[None]] = {}

    def remember(self, ctx: ServerRequestContext) -> None:
        """Note a 2025-11-25 session (any request on it will do)."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            # No public accessor on the request-scoped session (mcp 2.3).
            self._connections.add(ctx.session._connection)

    def changed(self, kind: Kind = "tools") -> None:
        """Schedule one notice of ``kind`` ("tools", "prompts") to everyone
        (callable from sync code on the loop)."""
        pending = self._pending.get(kind)
        if pending is not None and not pending.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (start-up, tests of pure code): nobody to tell
            return
        self._pending[kind] = loop.create_task(
            self._send_later(kind), name=f"mcp-{kind}-list-changed"
        )

    async def _send_later(self, kind: Kind) -> None:
        await asyncio.sleep(self._coalesce)
        await self.send(kind)

    async def send(self, kind: Kind = "tools") -> None:
        event, method = _NOTICES[kind]
        await self.bus.publish(event())
        for connection in list(self._connections):
            try:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    await connection.outbound.notify(method, None)
            except Exception as exc:  # a closed session: forget it
                logger.debug("%s not delivered: %r", method, exc)
                self._connections.discard(connection)

    async def aclose(self) -> None:
        for pending in self._pending.values():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
