"""What the gateway's SDK client sends and reads, amended at the transport.

Two things the gateway needs from every SDK session (`adapters.mcp_client.
open_client`) that the SDK's client offers no public hook for:

* a 2026-07-28 request carries the *caller's* client capabilities in
  ``_meta`` (`adapters.mcp_relay.caller_capabilities`), where the SDK stamps
  one fixed set of its own that a call's ``_meta`` cannot override;
* a 2026-07-28 result without ``resultType`` reads as complete
  (`adapters.mcp_results.complete_by_default`), where the SDK checks results
  against a schema that requires it.

`mcp.Client` takes any `Transport` (an async context manager yielding the
read and write streams of `SessionMessage`), so `Wire` wraps the one the
gateway builds and amends the messages on their way: a request as the SDK's
dispatcher writes it, a response before the dispatcher reads it. Both are
cheap -- no task, no stream of its own: a dict lookup per message.

The caller is known on the write side because the SDK's dispatcher writes a
request from the task that sends it (`JSONRPCDispatcher.send_raw_request`
awaits `_write`, i.e. the write stream's ``send``, before awaiting its
answer), so `adapters.mcp_relay.CALL_RELAY` there is the caller's. On the
read side the transport's ``last_context`` (the context of the task that
received a message, which the dispatcher reads with ``getattr`` to run a
server's mid-call request for the right caller) is passed on unchanged.

Nothing is amended before the session has negotiated a 2026-07-28 revision
(the handshake's own messages are the SDK's), nor on earlier revisions,
which have neither ``_meta`` capabilities nor ``resultType``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from adapters.mcp_relay import caller_capabilities
from adapters.mcp_results import complete_by_default

# The requests awaiting an answer that one session remembers at most. A
# request is forgotten when answered, or when the SDK cancels it (a timeout,
# a caller gone: `notifications/cancelled` goes out through here too); the
# bound keeps a session whose server never answers some requests from growing
# without end. An evicted request's untagged result would fail that call.
MAX_REMEMBERED = 10_000

_CANCELLED = "notifications/cancelled"


def _not_yet() -> str | None:
    return None


class Wire:
    """A transport for `mcp.Client`: ``transport``'s streams, amended.

    ``negotiated`` says the session's protocol revision once it has one
    (None until then); `open_client` sets it to read the client's session.
    """

    def __init__(self, transport: AbstractAsyncContextManager[Any]) -> None:
        self._transport = transport
        self.negotiated: Callable[[], str | None] = _not_yet
        self._version: str | None = None  # `negotiated`'s answer, once it has one
        self._asked: dict[RequestId, str] = {}  # request id -> method, awaiting their answer

    async def __aenter__(self) -> tuple[WireReads, WireWrites]:
        read, write = await self._transport.__aenter__()
        return WireReads(read, self), WireWrites(write, self)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        return await self._transport.__aexit__(exc_type, exc_val, exc_tb)

    def version(self) -> str | None:
        if self._version is None:
            self._version = self.negotiated()
        return self._version

    def sent(self, message: Any) -> None:
        """Note a request and stamp its caller's capabilities, in place:
        ``message`` is the SDK's own per-send copy (the dispatcher copies
        ``params`` and ``_meta`` for each request)."""
        if self.version() not in MODERN_PROTOCOL_VERSIONS:
            return
        if isinstance(message, JSONRPCRequest):
            if len(self._asked) >= MAX_REMEMBERED:
                del self._asked[next(iter(self._asked))]  # the oldest
            self._asked[coerce_request_id(message.id)] = message.method
            caller_capabilities(message.params)
        elif isinstance(message, JSONRPCNotification):
            if message.method == _CANCELLED:
                request_id = (message.params or {}).get("requestId")
                if isinstance(request_id, int | str):
                    self._asked.pop(coerce_request_id(request_id), None)
            caller_capabilities(message.params)

    def received(self, item: SessionMessage | Exception) -> SessionMessage | Exception:
        """``item``, its result read as complete if it is an untagged
        2026-07-28 one (`complete_by_default`); the SDK's checks follow."""
        if not self._asked or not isinstance(item, SessionMessage):
            return item
        message = item.message
        if isinstance(message, JSONRPCResponse):
            method = self._asked.pop(coerce_request_id(message.id), None)
            if method is None:
                return item
            raw = message.result
            completed = complete_by_default(method, self._version, raw)
            if completed is raw:
                return item
            answer = JSONRPCResponse(jsonrpc="2.0", id=message.id, result=completed)
            return SessionMessage(message=answer, metadata=item.metadata)
        if isinstance(message, JSONRPCError) and message.id is not None:
            self._asked.pop(coerce_request_id(message.id), None)
        return item


class _Stream:
    """What both of a transport's streams pass on unchanged: closing, and
    entering and leaving as a context."""

    __slots__ = ("_inner", "_wire")

    def __init__(self, inner: Any, wire: Wire) -> None:
        self._inner = inner
        self._wire = wire

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        result: bool | None = await self._inner.__aexit__(exc_type, exc_val, exc_tb)
        return result


class WireReads(_Stream):
    """The transport's read stream, each answer passed through `Wire.received`."""

    __slots__ = ()

    @property
    def last_context(self) -> contextvars.Context | None:
        """The inner stream's: the context the last message was received in."""
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        return self._wire.received(await self._inner.receive())

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        return self._wire.received(await self._inner.__anext__())


class WireWrites(_Stream):
    """The transport's write stream, each message passed through `Wire.sent`."""

    __slots__ = ()

    async def send(self, item: SessionMessage, /) -> None:
        self._wire.sent(item.message)
        await self._inner.send(item)
