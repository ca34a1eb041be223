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
from collections.abc import Awaitable, Callable

import anyio
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.subscriptions import (
    PromptsListChanged,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from gateway.compat.mcp import connection_of
from gateway.mcp.sets import current_set

logger = logging.getLogger(__name__)
COALESCE_SECONDS = 0.2
SEND_TIMEOUT_SECONDS = 2.0
HOOK_TIMEOUT_SECONDS = 1.0

Kind = str  # "tools" or "prompts"
_NOTICES: dict[Kind, tuple[Callable[[], ServerEvent], str]] = {
    "tools": (ToolsListChanged, types.ToolListChangedNotification().method),
    "prompts": (PromptsListChanged, types.PromptListChangedNotification().method),
}


class SetAwareBus:
    """A `SubscriptionBus` whose listeners are kept with the virtual server
    (`gateway.mcp.sets`) their `subscriptions/listen` came in on, so a
    change to one set's tools is published to that set's listeners only.
    Otherwise as the SDK's `InMemorySubscriptionBus`."""

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[str | None, Callable[[ServerEvent], None]]] = {}

    async def publish(self, event: ServerEvent, only: str | None = None) -> None:
        """To every listener; ``only``: to those of that set."""
        for on, listener in list(self._listeners.values()):
            if only is not None and on != only:
                continue
            try:
                listener(event)
            except Exception:  # fan-out boundary: isolate listeners from each other
                logger.exception("subscription listener raised; continuing")
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = (_set_name(), listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe


def _set_name() -> str | None:
    chosen = current_set.get()
    return chosen.name if chosen is not None else None


class ToolListNotifier:
    def __init__(self, coalesce_seconds: float = COALESCE_SECONDS) -> None:
        self.bus = SetAwareBus()
        # Each 2025-11-25 session, with the virtual server it is on (None: /mcp).
        self._connections: weakref.WeakKeyDictionary[Connection, str | None] = (
            weakref.WeakKeyDictionary()
        )
        self._coalesce = coalesce_seconds
        self._pending: dict[tuple[Kind, str | None], asyncio.Task[None]] = {}
        # Awaited before a scheduled notice goes out (`gateway.mcp.change_watch`
        # takes what it is about as known, so another pass does not tell it again).
        self.before_send: list[Callable[[Kind, str | None], Awaitable[None]]] = []

    def remember(self, ctx: ServerRequestContext) -> None:
        """Note a 2025-11-25 session (any request on it will do)."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._connections[connection_of(ctx.session)] = _set_name()

    def changed(self, kind: Kind = "tools", only: str | None = None) -> None:
        """Schedule one notice of ``kind`` ("tools", "prompts") to everyone,
        or (``only``) to the clients of one virtual server (callable from
        sync code on the loop)."""
        for key in ((kind, None), (kind, only)):
            pending = self._pending.get(key)
            if pending is not None and not pending.done():
                return  # everyone (or this set) is about to be told
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (start-up, tests of pure code): nobody to tell
            return
        self._pending[(kind, only)] = loop.create_task(
            self._send_later(kind, only), name=f"mcp-{kind}-list-changed"
        )

    async def _send_later(self, kind: Kind, only: str | None) -> None:
        await asyncio.sleep(self._coalesce)
        for hook in self.before_send:
            try:
                # Bounded: a slow database must not hold the clients' notice up.
                async with asyncio.timeout(HOOK_TIMEOUT_SECONDS):
                    await hook(kind, only)
            except Exception as exc:  # the notice matters more than the bookkeeping
                logger.warning("before sending %s list_changed: %r", kind, exc)
        await self.send(kind, only)

    async def send(self, kind: Kind = "tools", only: str | None = None) -> None:
        event, method = _NOTICES[kind]
        await self.bus.publish(event(), only)
        for connection, on in list(self._connections.items()):
            if only is not None and on != only:
                continue
            try:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    await connection.outbound.notify(method, None)
            except Exception as exc:  # a closed session: forget it
                logger.debug("%s not delivered: %r", method, exc)
                self._connections.pop(connection, None)

    async def settled(self) -> None:
        """Until every notice scheduled so far (and any scheduled meanwhile)
        has been sent: a test's "nothing left on its way"."""
        while pending := [task for task in self._pending.values() if not task.done()]:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        for pending in self._pending.values():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
