"""The breaker, retry and fallback settings that apply to a call: the core's
`Resilience` (the breakers, the retry settings, the policy's handoff rules
per agent and skill), and a breaker's state as an A2A error or as the
registry shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from a2a.utils.errors import InternalError

from adapters.operations import Listener
from gateway.delegation.breaker import BreakerOpen, Breakers, BreakerSettings, BreakerState
from gateway.delegation.retry import NO_RETRIES, RetrySettings
from gateway.delegation.upstream_failures import UpstreamUnavailableError
from policies.rules import Handoff, Policy, handoff
from registry.models import BreakerInfo


def breaker_error(exc: BreakerOpen) -> InternalError:
    return UpstreamUnavailableError(
        f"agent {exc.upstream} is unavailable: its circuit breaker is "
        f"{exc.state.status.value} after {exc.state.failures} consecutive failures; not called",
        data={"agent": exc.upstream, "breaker": exc.state.status.value},
    )


def breaker_info(state: BreakerState) -> BreakerInfo:
    opened = datetime.fromtimestamp(state.opened_at, UTC) if state.opened_at else None
    return BreakerInfo(state=state.status.value, failures=state.failures, opened_at=opened)


@dataclass
class Resilience:
    """The breakers and retry settings, and the policy's handoff rules (cached
    per policy: the hot path asks on every call)."""

    breakers: Breakers
    retry: RetrySettings
    # Told of every upstream attempt's end (`adapters.operations`): the metrics.
    upstream_listeners: list[Listener] = field(default_factory=list, repr=False)
    _policy: Policy | None = field(default=None, repr=False)
    _rules: dict[tuple[str, str | None], Handoff] = field(default_factory=dict, repr=False)

    @classmethod
    def fresh(cls) -> Resilience:
        """Breakers of their own and no retries (a part built without the app's)."""
        return cls(Breakers(BreakerSettings()), NO_RETRIES)

    def handoff(self, policy: Policy, agent_id: str, skill: str | None) -> Handoff:
        if policy is not self._policy:  # reloaded: start over
            self._policy, self._rules = policy, {}
        key = (agent_id, skill)
        rule = self._rules.get(key)
        if rule is None:
            if len(self._rules) > 10_000:
                self._rules.clear()
            rule = self._rules[key] = handoff(policy, agent_id, "skill", skill)
        return rule
