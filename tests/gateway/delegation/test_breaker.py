"""The breaker's state machine: pure transitions, and `Breakers` on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.delegation.breaker import (
    CLOSED,
    BreakerOpen,
    Breakers,
    BreakerSettings,
    BreakerStatus,
    allow,
    failed,
    succeeded,
)
from tests.support.clock import Clock

SETTINGS = BreakerSettings(threshold=3, cooldown_seconds=10)


def test_closed_to_open_after_threshold_consecutive_failures() -> None:
    state = CLOSED
    for n in range(1, 3):
        state = failed(state, now=n, wall=1000 + n, settings=SETTINGS)
        assert state.status is BreakerStatus.CLOSED and state.failures == n
    state = failed(state, now=3, wall=1003, settings=SETTINGS)
    assert state.status is BreakerStatus.OPEN
    assert state.failures == 3 and state.opened_at == 1003


def test_a_success_resets_the_count() -> None:
    state = failed(failed(CLOSED, 1, 1, SETTINGS), 2, 2, SETTINGS)
    assert succeeded(state) == CLOSED


def test_open_refuses_until_the_cooldown_then_one_probe() -> None:
    state = CLOSED
    for _ in range(3):
        state = failed(state, 0, 0, SETTINGS)
    assert allow(state, 9.9, SETTINGS)[0] is False
    allowed, probing = allow(state, 10, SETTINGS)
    assert allowed and probing.status is BreakerStatus.HALF_OPEN
    # While the probe is out, everyone else fails fast...
    assert allow(probing, 11, SETTINGS)[0] is False
    # ...a failed probe reopens (cool-down restarts), a good one closes.
    reopened = failed(probing, 12, 12, SETTINGS)
    assert reopened.status is BreakerStatus.OPEN and reopened.opened_mono == 12
    assert succeeded(probing) == CLOSED


def test_a_lost_probe_is_replaced_after_another_cooldown() -> None:
    state = CLOSED
    for _ in range(3):
        state = failed(state, 0, 0, SETTINGS)
    _, probing = allow(state, 10, SETTINGS)
    assert allow(probing, 19.9, SETTINGS)[0] is False
    assert allow(probing, 20, SETTINGS)[0] is True


def test_a_late_failure_does_not_restart_the_cooldown() -> None:
    state = CLOSED
    for _ in range(3):
        state = failed(state, 0, 0, SETTINGS)
    late = failed(state, 5, 5, SETTINGS)
    assert late.opened_mono == 0 and late.failures == 4


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 5)), max_size=60))
def test_never_open_without_threshold_consecutive_failures(
    events: list[tuple[bool, float]],
) -> None:
    state, now, streak = CLOSED, 0.0, 0
    for ok, dt in events:
        now += dt
        allowed, state = allow(state, now, SETTINGS)
        if not allowed:
            # Refused only while open or probing, and only after a full streak.
            assert state.status is not BreakerStatus.CLOSED
            assert state.failures >= SETTINGS.threshold
            continue
        if ok:
            state, streak = succeeded(state), 0
        else:
            state, streak = failed(state, now, now, SETTINGS), streak + 1
        if state.status is BreakerStatus.CLOSED:
            assert state.failures == streak < SETTINGS.threshold


def test_breakers_fail_fast_and_recover_on_a_clock() -> None:
    clock = Clock(100.0)
    breakers = Breakers(SETTINGS, monotonic=clock, wall=clock)
    for _ in range(3):
        breakers.check("a")
        breakers.failure("a")
    with pytest.raises(BreakerOpen, match="circuit breaker open"):
        breakers.check("a")
    breakers.check("b")  # one breaker per upstream
    assert not breakers.would_allow("a")
    clock.now += 10
    assert breakers.would_allow("a")
    breakers.check("a")  # the probe
    assert breakers.state("a").status is BreakerStatus.HALF_OPEN
    breakers.success("a")
    assert breakers.state("a") == CLOSED


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="threshold"):
        BreakerSettings(threshold=0)
