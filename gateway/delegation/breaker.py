"""Circuit breakers, one per upstream (an A2A agent or an MCP server).

The state machine is pure (`BreakerState` and the transitions below take the
time as an argument), so it is tested without clocks; `Breakers` keeps one
state per upstream in this process.

    closed --(threshold consecutive failures)--> open
    open --(cool-down over; the next call is the probe)--> half_open
    half_open --(the probe succeeds)--> closed
    half_open --(the probe fails)--> open (cool-down starts again)

While open, and while a probe is in flight, calls fail fast without reaching
the upstream. A probe that never reports (its caller went away) is given up
after one more cool-down, and the next call probes again.

What counts as a failure is the caller's business (`gateway.delegation.retry.classify`):
connection failures, timeouts and 5xx-class answers; an upstream that answers,
even with an error of its own, is up.

State is per process: with several replicas each keeps its own breakers, so
an agent that is down is detected by each replica after `threshold` failures
of its own.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, replace


class BreakerStatus(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSettings:
    threshold: int = 5  # consecutive failures that open the breaker
    cooldown_seconds: float = 30.0  # how long it stays open before a probe

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.cooldown_seconds <= 0:
            raise ValueError("a breaker needs threshold >= 1 and cooldown_seconds > 0")


@dataclass(frozen=True)
class BreakerState:
    status: BreakerStatus = BreakerStatus.CLOSED
    failures: int = 0  # consecutive
    opened_at: float | None = None  # wall-clock seconds, for display
    opened_mono: float | None = None  # monotonic, for the cool-down
    probe_since: float | None = None  # monotonic, while a probe is in flight


CLOSED = BreakerState()


def allow(state: BreakerState, now: float, settings: BreakerSettings) -> tuple[bool, BreakerState]:
    """May a call go to the upstream now? Returns the answer and the new state
    (the first call after the cool-down becomes the half-open probe)."""
    if state.status is BreakerStatus.CLOSED:
        return True, state
    if state.status is BreakerStatus.OPEN:
        assert state.opened_mono is not None
        if now - state.opened_mono < settings.cooldown_seconds:
            return False, state
        return True, replace(state, status=BreakerStatus.HALF_OPEN, probe_since=now)
    # Half-open: one probe at a time, unless the probe has been lost.
    if state.probe_since is not None and now - state.probe_since < settings.cooldown_seconds:
        return False, state
    return True, replace(state, probe_since=now)


def succeeded(state: BreakerState) -> BreakerState:
    return CLOSED


def failed(state: BreakerState, now: float, wall: float, settings: BreakerSettings) -> BreakerState:
    failures = state.failures + 1
    if state.status is BreakerStatus.OPEN:
        # A call let through before the breaker opened, failing late: it
        # does not restart the cool-down.
        return replace(state, failures=failures)
    if state.status is BreakerStatus.HALF_OPEN or failures >= settings.threshold:
        return BreakerState(BreakerStatus.OPEN, failures, wall, now, None)
    return replace(state, failures=failures)


class BreakerOpen(Exception):
    """The upstream's breaker is open (or probing): the call was not made."""

    def __init__(self, upstream: str, state: BreakerState) -> None:
        super().__init__(f"{upstream} is unavailable (circuit breaker {state.status.value})")
        self.upstream = upstream
        self.state = state


class Breakers:
    """One breaker per upstream id, in this process."""

    def __init__(
        self,
        settings: BreakerSettings,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._states: dict[str, BreakerState] = {}
        self._monotonic = monotonic
        self._wall = wall

    def state(self, upstream: str) -> BreakerState:
        return self._states.get(upstream, CLOSED)

    def states(self) -> dict[str, BreakerState]:
        """Every upstream whose breaker is not plainly closed (for metrics)."""
        return dict(self._states)

    def check(self, upstream: str) -> None:
        """Raise `BreakerOpen` unless a call may go to ``upstream`` now."""
        state = self._states.get(upstream)
        if state is None:  # the common case: never failed, or recovered
            return
        allowed, new = allow(state, self._monotonic(), self.settings)
        self._states[upstream] = new
        if not allowed:
            raise BreakerOpen(upstream, new)

    def would_allow(self, upstream: str) -> bool:
        """`check()` without taking the half-open probe."""
        state = self._states.get(upstream)
        return state is None or allow(state, self._monotonic(), self.settings)[0]

    def success(self, upstream: str) -> None:
        if upstream in self._states:
            del self._states[upstream]  # closed and no failures: the default

    def failure(self, upstream: str) -> None:
        state = self._states.get(upstream, CLOSED)
        self._states[upstream] = failed(state, self._monotonic(), self._wall(), self.settings)

    def forget(self, upstream: str) -> None:
        self._states.pop(upstream, None)
