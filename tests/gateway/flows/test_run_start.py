"""`RunStarts.start_admitted`'s audit of a start that failed: a bad input
is `invalid_input`; a failure once the run is stored is not the caller's
input (unit test of that method alone: the core is `Delegate`, over a
stand-in for the policy's admission and the audit writer that notes what
it is given)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gateway.delegation.breaker import Breakers, BreakerSettings
from gateway.delegation.delegate import Delegate
from gateway.delegation.permits import Caller
from gateway.delegation.resilience import Resilience
from gateway.delegation.retry import RetrySettings
from gateway.flows.run_start import InputInvalid, RunStarts

CALLER = Caller("dana", "https://idp.example", frozenset({"employee"}), ("app",), "app")


class Recorded:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str]] = []

    async def admit(self, call: Any) -> Any:
        return SimpleNamespace(decision=SimpleNamespace(granted=frozenset({"employee"})))

    async def record(
        self, grant: Any, event: str, outcome: str, detail: str, *, ends_call: bool = True
    ) -> None:
        self.outcomes.append((outcome, detail))


class Failing(RunStarts):
    def __init__(self, failure: Exception, recorded: Recorded) -> None:
        resilience = Resilience(Breakers(BreakerSettings()), RetrySettings())
        delegate = Delegate(recorded, resilience)  # type: ignore[arg-type]
        self.rt = SimpleNamespace(delegations=recorded, delegate=delegate)  # type: ignore[assignment]
        self.failure = failure

    async def start(self, *args: Any, **kwargs: Any) -> str:
        raise self.failure


async def _start(starts: RunStarts, run_input: Any = lambda: {}) -> None:
    await starts.start_admitted(
        "quote-flow", CALLER, run_input, event="flow.start", said=lambda run: run
    )


async def test_an_input_the_schema_refuses_is_recorded_as_invalid_input() -> None:
    recorded = Recorded()
    with pytest.raises(InputInvalid):
        await _start(Failing(InputInvalid("no quantity", []), recorded))
    assert recorded.outcomes == [("invalid_input", "no quantity")]


async def test_an_input_that_cannot_be_read_is_recorded_as_invalid_input() -> None:
    recorded = Recorded()

    def unreadable() -> dict[str, Any]:
        raise ValueError("not JSON")

    with pytest.raises(ValueError, match="not JSON"):
        await _start(Failing(AssertionError("not started"), recorded), unreadable)
    assert recorded.outcomes == [("invalid_input", "not JSON")]


async def test_a_value_error_once_the_run_is_stored_is_not_a_bad_input() -> None:
    recorded = Recorded()
    with pytest.raises(ValueError, match="launch"):
        await _start(Failing(ValueError("launch went wrong"), recorded))
    assert recorded.outcomes == []
