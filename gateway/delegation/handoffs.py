"""Resilient handoffs on the A2A front door: which skill a message is for, its
contract, and the breaker, retry and fallback settings that apply.

Which skill: A2A messages carry no skill id, so the gateway reads it from
metadata -- `params.metadata.skill` of the SendMessage request, else
`message.metadata.skill` -- and, when neither names one, takes the agent's
only skill if its card declares exactly one. A named skill the card does not
declare is an invalid request (-32602).

The contract (`registry.contracts`) applies to a message that starts a task
(no `taskId`): each of its data parts must match the skill's schema, and a
contract with no data part to check is a refusal too. The refusal is
InvalidParams (-32602) naming the part and the field (an RFC 6901 pointer),
in the message and in `data`; the agent is not called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from a2a.utils.errors import InternalError, InvalidParamsError

from gateway.delegation.breaker import BreakerOpen, Breakers, BreakerState
from gateway.delegation.retry import RetrySettings
from policies.policy import Handoff, Policy, handoff
from registry.contracts import violation
from registry.models import BreakerInfo

SKILL_KEY = "skill"


def skill_of(
    agent_id: str,
    card: Mapping[str, Any],
    request_metadata: Mapping[str, Any] | None,
    message_metadata: Mapping[str, Any] | None,
) -> str | None:
    """The skill a message is for (see the module's doc), or None when unsaid
    and the agent has several (or no) skills."""
    named = None
    for metadata in (request_metadata, message_metadata):
        if metadata is not None and SKILL_KEY in metadata:
            named = metadata[SKILL_KEY]
            break
    skills = [s.get("id") for s in card.get("skills") or () if isinstance(s, Mapping)]
    if named is None:
        return skills[0] if len(skills) == 1 and isinstance(skills[0], str) else None
    if not isinstance(named, str) or named not in skills:
        raise InvalidParamsError(
            f"agent {agent_id} has no skill {named!r} (metadata.{SKILL_KEY})",
            data={"skill": str(named), "field": f"metadata.{SKILL_KEY}"},
        )
    return named


def contract_refusal(
    agent_id: str, skill: str, schema: Any, data_parts: Iterable[tuple[int, Any]]
) -> InvalidParamsError | None:
    """Why the message's data parts break the skill's contract, or None. Pure."""
    checked = False
    for index, data in data_parts:
        checked = True
        found = violation(schema, data)
        if found is not None:
            field_path = f"message.parts[{index}].data{found.pointer}"
            return InvalidParamsError(
                f"skill {skill} of agent {agent_id}: data part {index} does not match its "
                f"contract at {found.pointer or '/'}: {found.message}",
                data={
                    "skill": skill,
                    "part": index,
                    "pointer": found.pointer,
                    "errors": [{"field": field_path, "message": found.message}],
                },
            )
    if not checked:
        return InvalidParamsError(
            f"skill {skill} of agent {agent_id} takes a data part matching its contract; "
            "the message has none",
            data={
                "skill": skill,
                "errors": [{"field": "message.parts", "message": "no data part"}],
            },
        )
    return None


def breaker_error(exc: BreakerOpen) -> InternalError:
    return InternalError(
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
    _policy: Policy | None = field(default=None, repr=False)
    _rules: dict[tuple[str, str | None], Handoff] = field(default_factory=dict, repr=False)

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
