"""The event store behind resumable `/mcp` streams (`gateway.mcp.events`):
binding to owner and session, caps, eviction, session end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import mcp_types as types
from mcp.server.streamable_http import EventMessage

from gateway.delegation.pipeline import Caller
from gateway.mcp.auth import current_caller
from gateway.mcp.events import (
    EVENT_OVERHEAD_BYTES,
    MemoryEventStore,
    SessionScope,
    _current_session,
)
from tests.support.clock import Clock


def store(clock: Clock | None = None, **caps: int) -> MemoryEventStore:
    limits = {"max_events_per_stream": 100, "max_events": 1000, "max_bytes": 1 << 20}
    limits.update(caps)
    return MemoryEventStore(**limits, idle_seconds=60, clock=clock or Clock())


def caller(sub: str, issuer: str = "https://issuer.example", client: str = "app") -> Caller:
    return Caller(
        subject=sub, issuer=issuer, scopes=frozenset(), actors=(client,), client_id=client
    )


@contextlib.contextmanager
def acting(who: Caller | None, session: SessionScope | None) -> Iterator[None]:
    caller_token = current_caller.set(who)
    session_token = _current_session.set(session)
    try:
        yield
    finally:
        _current_session.reset(session_token)
        current_caller.reset(caller_token)


def opened(events: MemoryEventStore, session_id: str) -> SessionScope:
    scope = SessionScope()
    events.opened(scope, session_id)
    return scope


def note(n: int) -> types.JSONRPCNotification:
    return types.JSONRPCNotification(
        jsonrpc="2.0", method="notifications/progress", params={"progressToken": 1, "progress": n}
    )


async def replay(events: MemoryEventStore, last_event_id: str) -> tuple[str | None, list[int]]:
    seen: list[int] = []

    async def collect(event: EventMessage) -> None:
        message = event.message
        assert isinstance(message, types.JSONRPCNotification) and message.params is not None
        seen.append(message.params["progress"])

    stream = await events.replay_events_after(last_event_id, collect)
    return stream, seen


async def test_a_replay_sends_what_followed_on_that_stream_only() -> None:
    events = store()
    alice, session = caller("alice"), opened(events, "s1")
    with acting(alice, session):
        priming = await events.store_event("1", None)
        for n in (1, 2):
            await events.store_event("1", note(n))
        await events.store_event("2", note(99))  # another request's stream
        await events.store_event("1", note(3))
        assert await replay(events, priming) == ("1", [1, 2, 3])
    assert len({priming, *events._events}) == events.count  # ids are unique


async def test_another_owner_or_session_replays_nothing() -> None:
    events = store()
    alice, session = caller("alice"), opened(events, "s1")
    with acting(alice, session):
        priming = await events.store_event("1", None)
        await events.store_event("1", note(1))
    # Same request id, same session object, another user: nothing.
    for who in (
        caller("bob"),
        caller("alice", issuer="https://evil.example"),
        caller("alice", client="other"),
    ):
        with acting(who, session):
            assert await replay(events, priming) == (None, [])
    # Alice herself, but from another of her sessions: nothing.
    with acting(alice, opened(events, "s2")):
        assert await replay(events, priming) == (None, [])
    # No caller or no session known: nothing, and nothing is kept either.
    with acting(None, session):
        assert await replay(events, priming) == (None, [])
        unbound = await events.store_event("1", note(2))
    with acting(alice, None):
        assert await replay(events, priming) == (None, [])
        assert await events.store_event("1", note(3)) != unbound
    assert events.count == 2
    with acting(alice, session):
        assert await replay(events, "made-up") == (None, [])
        assert await replay(events, unbound) == (None, [])
        assert await replay(events, priming) == ("1", [1])


async def test_a_session_not_yet_named_replays_nothing() -> None:
    events = store()
    alice, session = caller("alice"), SessionScope()  # the opening response never came
    with acting(alice, session):
        priming = await events.store_event("0", None)
        assert await replay(events, priming) == (None, [])


async def test_events_per_stream_are_capped_oldest_first() -> None:
    events = store(max_events_per_stream=3)
    with acting(caller("alice"), opened(events, "s1")):
        ids = [await events.store_event("1", note(n)) for n in range(5)]
        other = await events.store_event("2", note(7))
        assert events.count == 4
        assert await replay(events, ids[0]) == (None, [])  # evicted: as if unknown
        assert await replay(events, ids[2]) == ("1", [3, 4])
        assert await replay(events, other) == ("2", [])


async def test_total_events_and_bytes_are_capped_oldest_first() -> None:
    events = store(max_events=4)
    alice, bob = caller("alice"), caller("bob")
    with acting(alice, opened(events, "a")):
        first = await events.store_event("1", note(1))
    with acting(bob, opened(events, "b")):
        for n in range(4):
            await events.store_event("1", note(n))
    assert events.count == 4
    with acting(alice, events.session("a")):
        assert await replay(events, first) == (None, [])

    size = EVENT_OVERHEAD_BYTES + len(note(1).model_dump_json(by_alias=True, exclude_unset=True))
    events = store(max_bytes=3 * size)
    with acting(alice, opened(events, "a")):
        ids = [await events.store_event("1", note(n)) for n in range(1, 6)]
        assert events.count == 3 and events.bytes == 3 * size
        assert await replay(events, ids[2]) == ("1", [4, 5])
        # One message larger than the whole budget is sent but not kept.
        huge = types.JSONRPCNotification(
            jsonrpc="2.0", method="notifications/message", params={"data": "x" * 4 * size}
        )
        await events.store_event("1", huge)
        assert events.count == 3 and events.bytes == 3 * size


async def test_one_user_over_their_quota_evicts_their_own_events_only() -> None:
    """A busy user cannot push another user's streams out of the store."""
    events = store(max_events=10, max_events_per_owner=4)
    alice, bob = caller("alice"), caller("bob")
    with acting(bob, opened(events, "b")):
        kept = [await events.store_event("1", note(n)) for n in range(3)]
    with acting(alice, opened(events, "a")):
        flood = [await events.store_event("1", note(n)) for n in range(20)]
        # Alice keeps her newest four; the oldest of hers went first.
        assert await replay(events, flood[16]) == ("1", [17, 18, 19])
        assert await replay(events, flood[15]) == (None, [])
    assert events.count == 7
    with acting(bob, events.session("b")):
        assert await replay(events, kept[0]) == ("1", [1, 2])

    size = EVENT_OVERHEAD_BYTES + len(note(1).model_dump_json(by_alias=True, exclude_unset=True))
    events = store(max_bytes_per_owner=2 * size)
    with acting(bob, opened(events, "b")):
        theirs = await events.store_event("1", note(1))
    with acting(alice, opened(events, "a")):
        mine = [await events.store_event("1", note(n)) for n in range(1, 6)]
        assert await replay(events, mine[3]) == ("1", [5])
        assert await replay(events, mine[2]) == (None, [])
    assert events.bytes == 3 * size
    with acting(bob, events.session("b")):
        assert await replay(events, theirs) == ("1", [])  # still known: nothing after it


async def test_a_deleted_or_idle_session_loses_its_events() -> None:
    clock = Clock()
    events = store(clock)
    alice = caller("alice")
    ended, busy, idle = opened(events, "e"), opened(events, "b"), opened(events, "i")
    for session in (ended, busy, idle):
        with acting(alice, session):
            await events.store_event("1", note(1))
    events.drop(ended)
    assert events.count == 2
    busy.in_flight = 1  # e.g. an open GET stream: never idle
    clock.now += 61
    with acting(alice, opened(events, "new")):
        await events.store_event("1", note(2))  # stores sweep now and then
    assert events.count == 2
    with acting(alice, busy):
        assert (await replay(events, next(iter(events._events))))[0] == "1"
    assert events.bytes == sum(event.size for event in events._events.values())


def test_a_session_is_known_while_something_holds_it() -> None:
    """Its router task's context or its events; then it leaves the index."""
    events = store()
    scope = opened(events, "s1")
    assert events.session("s1") is scope
    del scope
    assert events.session("s1") is None
