"""Rate limits and quotas in the policy file: which apply to a call, and the
counter each one counts in. Pure: counting is the gateway's
(`gateway.delegation.rate_limits`, on the `limits` library).

```yaml
limits:
  - name: per-user
    rate: 100/minute          # N/second|minute|hour|day, or N/s|m|h|d (`parse_rate`)
    per: [user]               # the counter: one per user, per client, per agent, ...
  - name: quotes
    rate: 10/minute
    per: [user, agent]
    agents: [sales]           # only calls to these targets (default: every target)
    skills: [quote]           # only these skills or tools (default: every action)
    strategy: fixed-window    # or moving-window (the default), sliding-window-counter
```

A call is counted against every limit that matches it, each in its own
counter (the rule's name and the values of its `per` dimensions); one limit
reached refuses the call. `flow` counts per flow run's flow once flows exist
(until then it is the empty value).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, parse_many
from pydantic import BaseModel, ConfigDict, Field, field_validator

_SHORTHAND = re.compile(r"^(\d{1,9})/([smhd])$", re.ASCII)
# The longest window a rate may count over: a day's multiples up to a year
# (a counter kept longer would outlive any deployment's key store).
MAX_WINDOW_SECONDS = 366 * 86_400
_ZERO_WINDOW = re.compile(r"(?:/|\bper)\s*0+\s", re.ASCII)
_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


class RateError(ValueError):
    """Not a rate; ``str()`` says what to write."""


def parse_rate(value: str) -> str:
    """A rate -- ``10/s`` or ``10/second`` (``m``/``minute``, ``h``/``hour``,
    ``d``/``day``; the `limits` library's notation, e.g. ``10 per 2 seconds``,
    too) -- in the library's notation, for the policy's limits and an API
    key's own alike. One rate: ``1/second;5/minute`` is two limits, which
    the library would read as the first alone."""
    text = value.strip()
    short = _SHORTHAND.match(text)
    if short is not None:
        text = f"{int(short.group(1))}/{_UNITS[short.group(2)]}"
    try:
        parsed = parse_many(text) if text.isascii() else []
    except ValueError:
        parsed = []
    if len(parsed) == 1 and not _sensible(text, parsed[0]):
        raise RateError(
            f"{value!r} is not a rate: a window of seconds, minutes, hours or days, "
            f"at least one and at most {MAX_WINDOW_SECONDS // 86_400} days"
        )
    if len(parsed) != 1:
        raise RateError(
            f"{value!r} is not a rate: write N/second, N/minute, N/hour or N/day "
            "(or N/s, N/m, N/h, N/d; e.g. 100/minute)"
        )
    return text


def _sensible(text: str, item: RateLimitItem) -> bool:
    """A window of the four units, at least one of them and at most
    `MAX_WINDOW_SECONDS` (the library reads ``per 0 seconds`` as one
    second, and takes months and years). A count of 0 refuses every call,
    as a policy may mean (an API key's rate refuses it: `policies.api_keys`)."""
    return (
        item.GRANULARITY.name in _UNITS.values()
        and _ZERO_WINDOW.search(text) is None
        and 1 <= item.get_expiry() <= MAX_WINDOW_SECONDS
    )


Dimension = Literal["user", "client", "agent", "skill", "flow"]
Strategy = Literal["fixed-window", "moving-window", "sliding-window-counter"]


class LimitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    rate: str
    per: list[Dimension] = Field(default_factory=lambda: list[Dimension](["user"]), min_length=1)
    agents: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    skills: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    strategy: Strategy = "moving-window"

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        return parse_rate(value)

    def matches(self, agent_id: str, action: str | None) -> bool:
        agents = "*" in self.agents or agent_id in self.agents
        skills = "*" in self.skills or (action is not None and action in self.skills)
        return agents and skills


@dataclass(frozen=True)
class CallFacts:
    """What a limit's counter may be keyed by."""

    user: str
    client: str
    agent: str
    skill: str
    flow: str = ""

    def of(self, dimension: Dimension) -> str:
        """The value a counter keyed by ``dimension`` is kept under."""
        match dimension:
            case "user":
                return self.user
            case "client":
                return self.client
            case "agent":
                return self.agent
            case "skill":
                return self.skill
            case "flow":
                return self.flow


@dataclass(frozen=True)
class AppliedLimit:
    name: str
    rate: str
    strategy: Strategy
    key: tuple[str, ...]  # the rule's name, then one value per `per` dimension

    def describe(self) -> str:
        return f"{self.name} ({self.rate})"


def applicable(
    rules: Sequence[LimitRule], facts: CallFacts, action: str | None
) -> tuple[AppliedLimit, ...]:
    """The limits that count this call, each with its counter's key."""
    return tuple(
        AppliedLimit(
            rule.name,
            rule.rate,
            rule.strategy,
            (rule.name, *(facts.of(dimension) for dimension in rule.per)),
        )
        for rule in rules
        if rule.matches(facts.agent, action)
    )
