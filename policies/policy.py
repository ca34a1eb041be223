"""Delegation policy: the one pure decision function.

`authorize()` is the only place that says whether a delegation may happen and
with which scopes. The token endpoint, the delegation pipeline, agent listings
and `POST /policies/explain` all call it, so what explain says is what happens
and a user never sees an agent they could not use.

The granted scopes follow DESIGN.md: user's scopes ∩ what the target needs ∩
what the policy grants it. "What the target needs" is what the target's card
declares in its security requirements (A2A 1.0 `securityRequirements`, per
skill or per card); "what the policy grants" is the policy's `grant`. A side
that declares nothing does not constrain the other; when neither declares
anything, only the scopes the policy `require`s pass on -- so a scope nobody
declared is never handed to an agent.

An agent that delegates onwards must receive the scopes its own delegates
need: its card declares them, or the operator lists them in its `grant`.

The operator's rules, and how they nest, are `policies.rules`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.card_oauth import card_authorization
from policies.rules import (
    DEFAULT_MAX_DEPTH,
    EffectiveRule,
    Policy,
    Rule,
    merge,
)
from policies.rules import (
    ActionKind as ActionKind,
)

# --- What the target declares -------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What the decision needs to know about a delegation target (from its card)."""

    agent_id: str
    # Each alternative is one security requirement: the scopes it needs, all
    # together. One satisfied alternative is enough (A2A 1.0 §4.5, as OpenAPI).
    requirements: tuple[frozenset[str], ...] = ()
    skill_requirements: Mapping[str, tuple[frozenset[str], ...]] = field(default_factory=dict)
    # The skill ids the card declares; None when unknown (e.g. an MCP server's tools).
    skills: frozenset[str] | None = None

    @classmethod
    def from_card(cls, agent_id: str, card: Mapping[str, Any]) -> Target:
        skills = card.get("skills")
        if not isinstance(skills, list):
            skills = []
        if card_authorization(card) is not None:
            # Every call needs the user's own token from the agent's own
            # authorization server (`policies.card_oauth`): the scopes it
            # names are that server's, checked there against the user's own
            # grant -- not the gateway's scopes, and no minted token carries them.
            ids = frozenset(str(s.get("id")) for s in skills if isinstance(s, Mapping))
            return cls(agent_id=agent_id, skills=ids)
        return cls(
            agent_id=agent_id,
            requirements=_requirements(card.get("securityRequirements")),
            skill_requirements={
                str(s.get("id")): _requirements(s.get("securityRequirements"))
                for s in skills
                if isinstance(s, Mapping)
                and isinstance(s.get("securityRequirements"), list)
                and s["securityRequirements"]
            },
            skills=frozenset(str(s.get("id")) for s in skills if isinstance(s, Mapping)),
        )


def _requirements(value: Any) -> tuple[frozenset[str], ...]:
    """`[{"schemes": {"oauth": {"list": ["a", "b"]}}}, ...]` -> ({"a", "b"}, ...)."""
    if not isinstance(value, list):
        return ()
    alternatives = []
    for requirement in value:
        schemes = requirement.get("schemes") if isinstance(requirement, Mapping) else None
        scopes: set[str] = set()
        for scheme in schemes.values() if isinstance(schemes, Mapping) else ():
            listed = scheme.get("list") if isinstance(scheme, Mapping) else None
            if isinstance(listed, list):  # a string would split into characters
                scopes.update(s for s in listed if isinstance(s, str))
        alternatives.append(frozenset(scopes))
    return tuple(alternatives)


# --- The decision ---------------------------------------------------------------


class Denial(enum.StrEnum):
    """Why a delegation was refused; the token endpoint maps these to RFC 8693 errors."""

    UNKNOWN_ACTION = "unknown_action"
    POLICY = "policy"
    DEPTH = "depth"
    CYCLE = "cycle"
    SCOPE_EXCEEDS_SUBJECT = "scope_exceeds_subject"
    MISSING_SCOPE = "missing_scope"
    CARD_REQUIREMENT = "card_requirement"
    # Allowed, but a rate limit of the policy is reached (`policies.limits`).
    RATE_LIMITED = "rate_limited"
    # Allowed, but a coordination rule holds the call back (`policies.coordination`).
    COORDINATION = "coordination"
    # Allowed, but the API key it comes with has spent its budget (`policies.api_keys`).
    BUDGET = "budget"


@dataclass(frozen=True)
class DelegationQuery:
    """Everything the decision depends on; nothing else is consulted."""

    user_scopes: frozenset[str]
    # The agents that have already acted in this delegation, oldest first; the
    # target is not in it. Empty when a user's request goes to its first agent.
    chain: tuple[str, ...]
    target: Target
    action: str | None = None
    kind: ActionKind = "skill"
    requested_scopes: frozenset[str] | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    granted: frozenset[str]
    approval_required: bool
    reasons: tuple[str, ...]
    denial: Denial | None = None
    depth: int = 0
    rules: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "granted_scopes": sorted(self.granted),
            "approval_required": self.approval_required,
            "reasons": list(self.reasons),
            "denial": self.denial.value if self.denial else None,
            "depth": self.depth,
            "rules": list(self.rules),
        }


def authorize(
    policy: Policy, query: DelegationQuery, *, max_depth: int = DEFAULT_MAX_DEPTH
) -> Decision:
    """Decide one delegation. Pure: the same inputs always give the same answer."""
    target = query.target
    trail = policy.rule_trail(target.agent_id, query.kind, query.action)
    rule = merge(trail, max_depth)
    depth = len(query.chain) + 1
    where = target.agent_id + (f" {query.kind} {query.action}" if query.action else "")

    def deny(denial: Denial, reason: str) -> Decision:
        return Decision(False, frozenset(), False, (reason,), denial, depth, rule.sources)

    refused = _chain_refusal(query, rule, trail, depth, where) or _scope_refusal(
        policy, query, rule, where, max_depth
    )
    if refused is not None:
        return deny(*refused)
    # 6. ...and satisfy one of the card's security requirements, if it has any.
    alternatives = _declared(target, query)
    satisfied = [alt for alt in alternatives if alt <= query.user_scopes]
    if alternatives and not satisfied:
        options = " or ".join(_fmt(alt) or "(none)" for alt in alternatives)
        lacked = frozenset().union(*alternatives) - query.user_scopes
        return deny(
            Denial.CARD_REQUIREMENT,
            f"{where} requires one of {options}, {_lacked(policy, query.chain, lacked, max_depth)}",
        )
    base = query.user_scopes if query.requested_scopes is None else query.requested_scopes
    granted, reasons = _passed_on(base, rule, satisfied)
    if rule.approval:
        reasons.append(f"policy requires human approval for {where}")
    return Decision(True, granted, rule.approval, tuple(reasons), None, depth, rule.sources)


def _chain_refusal(
    query: DelegationQuery,
    rule: EffectiveRule,
    trail: list[tuple[str, Rule]],
    depth: int,
    where: str,
) -> tuple[Denial, str] | None:
    """Steps 1-3: the action exists, the operator allows it, the chain's shape."""
    target = query.target
    # 1. The action must exist on the target (when the card says what exists).
    if (
        query.action is not None
        and query.kind == "skill"
        and target.skills is not None
        and query.action not in target.skills
    ):
        return Denial.UNKNOWN_ACTION, f"agent {target.agent_id} has no skill {query.action}"
    # 2. The operator may forbid it outright.
    if not rule.allow:
        denied_by = ", ".join(source for source, r in trail if r.allow is False)
        return Denial.POLICY, f"policy forbids delegating to {where} ({denied_by})"
    # 3. Chain shape: bounded depth, no agent twice (A -> B -> A).
    if depth > rule.max_depth:
        return (
            Denial.DEPTH,
            f"delegation depth {depth} exceeds the limit of {rule.max_depth} for {where}",
        )
    if target.agent_id in query.chain:
        return (
            Denial.CYCLE,
            f"{target.agent_id} already acted in this chain ({' -> '.join(query.chain)})",
        )
    return None


def _scope_refusal(
    policy: Policy, query: DelegationQuery, rule: EffectiveRule, where: str, max_depth: int
) -> tuple[Denial, str] | None:
    """Steps 4-5: scopes only shrink, and the user holds what the policy requires."""
    # 4. Scopes only shrink: a request for more than the subject holds is refused.
    if query.requested_scopes is not None:
        excess = query.requested_scopes - query.user_scopes
        if excess:
            return (
                Denial.SCOPE_EXCEEDS_SUBJECT,
                f"requested scopes not held by the user: {_fmt(excess)}",
            )
    # 5. The user must hold what the policy requires...
    missing = rule.require - query.user_scopes
    if missing:
        return (
            Denial.MISSING_SCOPE,
            f"{where} requires {_fmt(missing)}, {_lacked(policy, query.chain, missing, max_depth)}",
        )
    return None


def _passed_on(
    base: frozenset[str], rule: EffectiveRule, satisfied: list[frozenset[str]]
) -> tuple[frozenset[str], list[str]]:
    """Step 7, what passes on: base ∩ needs ∩ grant, and the reasons saying so.
    "Needs" is what the card declares (the satisfied alternatives); an
    undeclared side does not constrain, but with neither side declared only
    `require` passes on."""
    needs = frozenset().union(*satisfied) if any(satisfied) else None
    reasons = [f"allowed by {', '.join(rule.sources)}"]
    if needs is None and rule.grant is None:
        granted = base & rule.require
        if not granted:
            reasons.append("neither the card nor the policy declares scopes: none passed on")
    else:
        granted = base
        if needs is not None:
            granted &= needs
        if rule.grant is not None:
            granted &= rule.grant
    dropped = base - granted
    if dropped:
        reasons.append(f"not passed on: {_fmt(dropped)}")
    return granted, reasons


def _lacked(policy: Policy, chain: tuple[str, ...], missing: frozenset[str], max_depth: int) -> str:
    """Who lacks ``missing``: the first agent of the chain whose rule does not
    pass it on -- its ``grant``; with none, its ``require`` (and its card's
    scopes, which are not known here) -- else the user. A flow's run holds what
    the flow was granted, whatever its user holds: this names the flow."""
    for agent in chain:
        rule = merge(policy.rule_trail(agent, "skill", None), max_depth)
        blocked = missing - (rule.grant if rule.grant is not None else rule.require)
        if blocked:
            add = f"add {_fmt(blocked)} to agents.{agent}.grant in the policy"
            if rule.grant is None:
                return (
                    f"which {agent} was not granted: the policy gives it no grant, so it passes "
                    f"on only what its card or its require names ({add})"
                )
            return f"which the grant of {agent} lacks ({add})"
    return "which the user lacks"


def _declared(target: Target, query: DelegationQuery) -> tuple[frozenset[str], ...]:
    # A skill's own requirements replace the card's (as an OpenAPI operation's
    # `security` replaces the document's).
    if query.kind == "skill" and query.action is not None:
        declared = target.skill_requirements.get(query.action)
        if declared is not None:
            return declared
    return target.requirements


def may_use(
    policy: Policy,
    user_scopes: frozenset[str],
    target: Target,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    chain: tuple[str, ...] = (),
) -> bool:
    """Whether a user may delegate anything at all to ``target``: the agent as a
    whole or any one of its skills. Listings use this, so they agree with calls."""
    actions: Iterable[str | None] = [None, *sorted(target.skills or ())]
    return any(
        authorize(
            policy, DelegationQuery(user_scopes, chain, target, action), max_depth=max_depth
        ).allowed
        for action in actions
    )


def _fmt(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))
