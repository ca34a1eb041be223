"""What a `tools/list` worked out for one caller, kept while its inputs stand.

A listing is a pure function of the caller and of a few objects the gateway
replaces (never mutates) when they change: the policy, the registry's agent
snapshot, the federation's tool snapshot. So a result can be kept per caller
with the objects it was worked out from, and is reused only while *those very
objects* (compared by identity) are still current -- a replaced policy or
snapshot is a miss, and nothing has to be invalidated by hand.

This matters for paging: every page of a `tools/list` asks for the whole
listing again (the cursor is an offset into it), so without this each page
would re-decide and re-copy every tool, and a full listing would cost
O(tools x pages) instead of O(tools) (`bench.scale`, docs/performance.md).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from gateway.delegation.pipeline import Caller

V = TypeVar("V")
CALLERS_KEPT = 256  # callers whose result is kept (the least recently listed goes)

CallerKey = tuple[object, ...]


def caller_key(caller: Caller) -> CallerKey:
    """Everything of the caller a decision reads (`policies.policy.authorize`)."""
    return (caller.subject, caller.issuer, caller.scopes, caller.actors, caller.client_id)


class PerCaller(Generic[V]):
    """One value per caller. Each is worked out from ``shared`` inputs -- the
    gateway's, the same for every caller at a time -- and the caller's
    ``own`` (its own decided list, say); it is reused only while both are
    the very objects it came from. The first value put with new shared
    inputs drops every other, so no replaced snapshot stays alive in the
    entry of a caller who does not list again."""

    def __init__(self, kept: int = CALLERS_KEPT) -> None:
        self._kept = kept
        self._shared: tuple[object, ...] = ()
        self._values: OrderedDict[CallerKey, tuple[tuple[object, ...], V]] = OrderedDict()

    def get(
        self, caller: Caller, shared: tuple[object, ...], own: tuple[object, ...] = ()
    ) -> V | None:
        """The value kept for ``caller`` if it was worked out from these inputs."""
        if not same_objects(self._shared, shared):
            return None
        key = caller_key(caller)
        found = self._values.get(key)
        if found is None or not same_objects(found[0], own):
            return None
        self._values.move_to_end(key)
        return found[1]

    def put(
        self, caller: Caller, shared: tuple[object, ...], own: tuple[object, ...], value: V
    ) -> V:
        if not same_objects(self._shared, shared):
            self._shared = shared
            self._values.clear()
        key = caller_key(caller)
        self._values[key] = (own, value)
        self._values.move_to_end(key)
        if len(self._values) > self._kept:
            self._values.popitem(last=False)
        return value


def same_objects(kept: tuple[object, ...], now: tuple[object, ...]) -> bool:
    """Whether two tuples hold the very same objects (compared by identity)."""
    return len(kept) == len(now) and all(a is b for a, b in zip(kept, now, strict=True))
