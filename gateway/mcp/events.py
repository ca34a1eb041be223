"""Resumable SSE streams for 2025-11-25 sessions on `/mcp` (MCP 2025-11-25
"Transports", Streamable HTTP, "Resumability and Redelivery"; SEP-1699).

Given an event store, the SDK's transport opens every POST's SSE stream with a
priming event (an id, empty data, and `retry`: how long the client waits
before reconnecting), stores each message it routes to a stream, and answers a
GET carrying `Last-Event-ID` by replaying what followed that event and then
tailing the stream live. A client whose connection drops mid-call so still
gets its result.

The SDK's `EventStore` interface sees only (stream id, message) and (last
event id, callback); one store serves every session, and a stream id is a
JSON-RPC request id, which every client numbers from 0. So the store binds
each event to its owner and its session itself:

* owner: (issuer, subject, client) of `current_caller`, which `McpAuth` sets
  before the SDK runs. `store_event` runs either in a request (the priming
  event of a POST or of a replay) or in the session's message router task,
  which anyio spawns from the request that opened the session and which so
  runs in a copy of that request's context: the session's user.
* session: `SessionBinding` (ASGI, inside `McpAuth`) puts a `SessionScope` in
  a context variable -- the one registered for the request's `Mcp-Session-Id`,
  or, for a request without one (only such a request opens a session), a new
  one that learns its id from the response's `Mcp-Session-Id` header. The
  router task inherits that new scope.

A replay sends only events of the owner and session of the GET asking for it;
an unknown, evicted or foreign id replays nothing, the same as an id that
never existed. Event ids are `secrets.token_urlsafe`, so they cannot be
guessed either.

Memory is bounded: events per stream, per user, in all, and bytes per user
and in all (a message's JSON, serialised once when stored: the store keeps
that text, not the object), the oldest evicted first -- over a user's quota,
that user's own oldest, so one busy user cannot push everyone else's streams
out of the store. A session's events go when the client
deletes it, or once it has had no request in flight for the session idle
timeout (when the SDK ends such a session too).

In memory, in one process: a session lives in the process that opened it, so
a store shared between replicas would buy nothing. 2026-07-28 requests never
get here: they are stateless, and the SDK gives them no event store.
"""

from __future__ import annotations

import contextvars
import secrets
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.mcp.auth import current_caller

Owner = tuple[str, str, str]  # (issuer, subject, client)

# What an event costs besides its JSON: the id, the bookkeeping objects.
EVENT_OVERHEAD_BYTES = 200


@dataclass(eq=False, slots=True, weakref_slot=True)
class SessionScope:
    """One 2025-11-25 session as the store knows it; compared by identity."""

    id: str | None = None  # known once the opening response named it
    in_flight: int = 0
    last_active: float = 0.0


_current_session: contextvars.ContextVar[SessionScope | None] = contextvars.ContextVar(
    "switchboard_mcp_session", default=None
)


@dataclass(eq=False, slots=True)
class _Stream:
    session: SessionScope
    stream_id: StreamId
    events: deque[_Event] = field(default_factory=deque)


@dataclass(eq=False, slots=True)
class _Event:
    id: EventId
    owner: Owner
    stream: _Stream
    data: bytes | None  # the message's JSON; None for a priming event
    size: int


def _owner() -> Owner | None:
    caller = current_caller.get()
    return None if caller is None else (caller.issuer, caller.subject, caller.client_id)


class MemoryEventStore(EventStore):
    """Events of this process's sessions, bound to their owner and session."""

    def __init__(
        self,
        *,
        max_events_per_stream: int,
        max_events: int,
        max_bytes: int,
        idle_seconds: float,
        max_events_per_owner: int | None = None,
        max_bytes_per_owner: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_events_per_stream = max_events_per_stream
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_events_per_owner = max_events_per_owner or max_events
        self.max_bytes_per_owner = max_bytes_per_owner or max_bytes
        # Each owner's events, oldest first (an owner's oldest is the oldest of
        # its stream: a session, and so each of its streams, has one owner).
        self._owned: dict[Owner, dict[EventId, _Event]] = {}
        self._owner_bytes: dict[Owner, int] = {}
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._events: dict[EventId, _Event] = {}  # oldest first
        self._streams: dict[SessionScope, dict[StreamId, _Stream]] = {}
        # A session's scope lives as long as its router task's context or its
        # events do; then it leaves this index by itself.
        self._scopes: weakref.WeakValueDictionary[str, SessionScope] = weakref.WeakValueDictionary()
        self.bytes = 0
        self._next_sweep = clock() + idle_seconds

    # No __len__: the SDK tests the store for truth (`if self._event_store:`).
    @property
    def count(self) -> int:
        return len(self._events)

    # Sessions -----------------------------------------------------------------

    def session(self, session_id: str) -> SessionScope | None:
        return self._scopes.get(session_id)

    def opened(self, scope: SessionScope, session_id: str) -> None:
        scope.id = session_id
        self._scopes[session_id] = scope

    def touch(self, scope: SessionScope) -> None:
        scope.last_active = self._clock()

    def drop(self, scope: SessionScope) -> None:
        """Forget a session's events (it ended, or has been idle too long)."""
        for stream in self._streams.pop(scope, {}).values():
            for event in stream.events:
                del self._events[event.id]
                self.bytes -= event.size
                self._disown(event)

    def _sweep(self) -> None:
        """Drop the events of sessions idle (nothing in flight) for the idle timeout."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(self.idle_seconds, 60.0)
        for scope in list(self._streams):
            if scope.in_flight == 0 and now - scope.last_active > self.idle_seconds:
                self.drop(scope)

    # EventStore ---------------------------------------------------------------

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = secrets.token_urlsafe(24)
        owner, scope = _owner(), _current_session.get()
        if owner is None or scope is None:
            return event_id  # bound to no one: kept nowhere, never replayed
        self._sweep()
        self.touch(scope)
        data = (
            None
            if message is None
            else jsonrpc_message_adapter.dump_json(message, by_alias=True, exclude_unset=True)
        )
        size = EVENT_OVERHEAD_BYTES + (len(data) if data is not None else 0)
        if size > min(self.max_bytes, self.max_bytes_per_owner):
            return event_id  # sent live, too large to keep
        streams = self._streams.setdefault(scope, {})
        stream = streams.get(stream_id)
        if stream is None:
            stream = streams[stream_id] = _Stream(scope, stream_id)
        event = _Event(event_id, owner, stream, data, size)
        stream.events.append(event)
        self._events[event_id] = event
        self.bytes += size
        owned = self._owned.setdefault(owner, {})
        owned[event_id] = event
        self._owner_bytes[owner] = self._owner_bytes.get(owner, 0) + size
        if len(stream.events) > self.max_events_per_stream:
            self._forget(stream.events[0])
        while (
            len(owned) > self.max_events_per_owner
            or self._owner_bytes[owner] > self.max_bytes_per_owner
        ):
            self._forget(next(iter(owned.values())))
        while len(self._events) > self.max_events or self.bytes > self.max_bytes:
            self._forget(next(iter(self._events.values())))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        event = self._events.get(last_event_id)
        owner, scope = _owner(), _current_session.get()
        if event is None or owner is None or event.owner != owner:
            return None
        stream = event.stream
        if scope is None or stream.session is not scope or scope.id is None:
            return None
        self.touch(scope)
        # A snapshot: the callback awaits, and the stream may grow meanwhile
        # (what arrives from now on reaches the replaying GET live).
        events = list(stream.events)
        for later in events[events.index(event) + 1 :]:
            if later.data is not None and later.owner == owner:
                message = jsonrpc_message_adapter.validate_json(later.data)
                await send_callback(EventMessage(message, later.id))
        return stream.stream_id

    def _forget(self, event: _Event) -> None:
        """Evict one event, the oldest of its stream."""
        stream = event.stream
        stream.events.popleft()
        del self._events[event.id]
        self.bytes -= event.size
        self._disown(event)
        if not stream.events:
            streams = self._streams[stream.session]
            del streams[stream.stream_id]
            if not streams:
                del self._streams[stream.session]

    def _disown(self, event: _Event) -> None:
        owned = self._owned[event.owner]
        del owned[event.id]
        self._owner_bytes[event.owner] -= event.size
        if not owned:
            del self._owned[event.owner], self._owner_bytes[event.owner]


def _opens_a_session(scope: Scope, headers: Headers) -> bool:
    """A POST without a session id at a handshake-era revision: the SDK opens a
    session for it (a 2026-07-28 request is stateless)."""
    version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
    return scope["method"] == "POST" and (version is None or version in HANDSHAKE_PROTOCOL_VERSIONS)


class SessionBinding:
    """Pure ASGI, inside `McpAuth`: tells the store which session a request
    (and a session's router task) belongs to, what is in flight, and which
    session a client deleted."""

    def __init__(self, app: ASGIApp, store: MemoryEventStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session_id = headers.get(MCP_SESSION_ID_HEADER)
        if session_id is not None:
            session = self.store.session(session_id)
        elif _opens_a_session(scope, headers):
            session = SessionScope()
            send = self._learn_id(session, send)
        else:
            session = None
        if session is None:
            await self.app(scope, receive, send)
            return
        deleting, bound = scope["method"] == "DELETE", session

        async def watch(message: Message) -> None:
            # A session the client deleted has ended: its events go before the
            # client hears so.
            start = message["type"] == "http.response.start"
            if deleting and start and 200 <= message["status"] < 300:
                self.store.drop(bound)
            await send(message)

        token = _current_session.set(session)
        session.in_flight += 1
        self.store.touch(session)
        try:
            await self.app(scope, receive, watch if deleting else send)
        finally:
            session.in_flight -= 1
            self.store.touch(session)
            _current_session.reset(token)

    def _learn_id(self, session: SessionScope, send: Send) -> Send:
        async def learn(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                opened = Headers(raw=message["headers"]).get(MCP_SESSION_ID_HEADER)
                if opened is not None:
                    self.store.opened(session, opened)
            await send(message)

        return learn
