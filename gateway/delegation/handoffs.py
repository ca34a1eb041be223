"""Resilient handoffs on the A2A front door: which skill a message is for, its
contract, and the breaker, retry and fallback settings that apply.

Which skill (`skill_of`, the one function every way into an agent asks): A2A
messages carry no skill id, so a caller names it in metadata, and an agent
serving several skills reads it there. It can be named in two places --
`metadata.skill` of the SendMessage request, and `metadata.skill` of the
message (in 0.3 HTTP+JSON the message may also come as `request`, the
proto's own field name) -- and every place is read, never "the first one
wins":

* places that name a skill must all name the same one, as a string, and
  the card must declare it;
* a place naming another skill, a skill the card does not declare, or a
  skill that is not a string is an invalid request (-32602, naming the
  places): refused before any decision, nothing is sent upstream;
* naming none, the message is for the agent's only skill when its card
  declares exactly one, else for no skill in particular (None).

The request that then goes upstream names that skill, and only it, in every
place (`stamp_skill`): an agent that reads either place reads the skill the
policy decided for. A message that names no skill, to an agent with several,
goes upstream naming none: the agent picks, which is why the policy decided
it as for the strictest skill (`Delegations.strictest_skill`) -- the gateway
never names one the caller did not ask for, which would turn a harmless
request into the strictest operation.

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

from a2a.types import SendMessageRequest
from a2a.utils.errors import InternalError, InvalidParamsError

from gateway.delegation.breaker import BreakerOpen, Breakers, BreakerState
from gateway.delegation.retry import RetrySettings
from policies.policy import Handoff, Policy, handoff
from registry.contracts import violation
from registry.models import BreakerInfo

SKILL_KEY = "skill"
# (where, that place's metadata): where is the field's path, for the caller.
Place = tuple[str, Mapping[str, Any] | None]


def json_places(params: Mapping[str, Any]) -> list[Place]:
    """Every place a SendMessage request's JSON params (JSON-RPC `params`, or
    the HTTP+JSON body; A2A 1.0 or 0.3) can name a skill in. Read more widely
    than any one parser does: a place the SDK then ignores can only cause a
    refusal, never a skill the decision did not see."""
    places: list[Place] = [("params.metadata", _mapping(params.get("metadata")))]
    for key in ("message", "request"):  # "request": 0.3's proto field name
        message = params.get(key)
        if isinstance(message, Mapping):
            places.append((f"params.{key}.metadata", _mapping(message.get("metadata"))))
    return places


def proto_places(params: SendMessageRequest) -> list[Place]:
    """The places of a parsed request: what an agent receives."""
    message = params.message
    return [
        ("params.metadata", params.metadata if params.HasField("metadata") else None),
        (
            "params.message.metadata",
            message.metadata if message.HasField("metadata") else None,
        ),
    ]


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _named(places: Iterable[Place]) -> dict[str, Any]:
    """{field path: value} for every place that names a skill (any value)."""
    return {
        f"{where}.{SKILL_KEY}": metadata[SKILL_KEY]
        for where, metadata in places
        if metadata is not None and SKILL_KEY in metadata
    }


def skill_of(agent_id: str, card: Mapping[str, Any], places: Iterable[Place]) -> str | None:
    """The skill a message is for (see the module's doc), or None when unsaid
    and the agent has several (or no) skills. Raises InvalidParamsError."""
    return _decide(agent_id, card, _named(places))


def _decide(agent_id: str, card: Mapping[str, Any], named: dict[str, Any]) -> str | None:
    skills = [s.get("id") for s in card.get("skills") or () if isinstance(s, Mapping)]
    if not named:
        return skills[0] if len(skills) == 1 and isinstance(skills[0], str) else None
    fields = sorted(named)
    shown = {k: v if isinstance(v, str) else repr(v) for k, v in named.items()}
    wrong = [where for where in fields if not isinstance(named[where], str)]
    if wrong:
        raise InvalidParamsError(
            f"{wrong[0]} must be a string naming one of agent {agent_id}'s skills",
            data={"field": wrong[0], "named": shown},
        )
    distinct = sorted(set(named.values()))
    if len(distinct) > 1:
        listing = ", ".join(f"{named[where]!r} ({where})" for where in fields)
        raise InvalidParamsError(
            f"the request names more than one skill: {listing}; name one skill, "
            "the same in every place",
            data={"field": fields[0], "named": shown},
        )
    (skill,) = distinct
    if skill not in skills:
        raise InvalidParamsError(
            f"agent {agent_id} has no skill {skill!r} ({', '.join(fields)})",
            data={"skill": skill, "field": fields[0], "named": shown},
        )
    return str(skill)


def stamp_skill(params: SendMessageRequest, skill: str | None) -> None:
    """Make ``skill`` the only skill the request names, in every place an agent
    may read one (both metadata levels); None: it names none anywhere."""
    message = params.message
    if skill is not None:
        params.metadata.update({SKILL_KEY: skill})
        message.metadata.update({SKILL_KEY: skill})
        return
    for holder, metadata in ((params, params.metadata), (message, message.metadata)):
        if holder.HasField("metadata") and SKILL_KEY in metadata:
            del metadata[SKILL_KEY]


def admitted_skill(
    agent_id: str, card: Mapping[str, Any], decided: str | None, params: SendMessageRequest
) -> str | None:
    """Check that the parsed request (what goes upstream) names no skill but
    ``decided`` -- the skill the front door decided from the caller's JSON --
    then stamp it in every place, and return it. A disagreement means a place
    was read differently before and after parsing: refused, never guessed."""
    named = _named(proto_places(params))
    found = _decide(agent_id, card, named)
    if named and found != decided:
        raise InvalidParamsError(
            f"the request names skill {found!r}, but it was admitted for "
            + ("no skill in particular" if decided is None else repr(decided)),
            data={"skill": found, "field": sorted(named)[0]},
        )
    skill = found if decided is None else decided  # unsaid: the agent's only skill, or none
    stamp_skill(params, skill)
    return skill


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
