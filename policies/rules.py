"""The operator's delegation rules: the policy file's model, and the rules
that apply to one call merged into one (`policies.policy.authorize` decides
with them).

Rules nest: `defaults` -> `agents["*"]` -> `agents[id]` -> its `skills[id]` or
`tools[name]`. A more specific rule can only tighten: `require` adds up,
`grant` intersects, `max_depth` takes the minimum, `approval` and a denial
stick. That way a rule lower down can never widen what a rule above allowed.
The resilience keys, `idempotent` and `fallback`, grant nothing: for them the
most specific rule that sets one wins (`handoff()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.coordination_rules import (
    CooldownRule,
    CoordinationPolicy,
    ExclusiveRule,
    HoldRule,
)
from policies.limits import LimitRule
from policies.prices import Prices
from policies.scopes import ScopeSyntaxError, parse_scopes

# DESIGN.md: the default delegation depth limit (user -> A -> B -> C -> D).
DEFAULT_MAX_DEPTH = 4
HARD_MAX_DEPTH = 16

# What a delegation does on its target: an agent's skill, or an MCP server's
# tool, resource (keyed by the upstream URI, or the URI template a read
# matches) or prompt (keyed by the upstream name).
ActionKind = Literal["skill", "tool", "resource", "prompt"]


class Rule(BaseModel):
    """One level of policy. Unset fields inherit from the level above."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: bool | None = Field(default=None, description="false forbids delegating here")
    require: list[str] | None = Field(
        default=None, description="scopes the user must hold to delegate here"
    )
    grant: list[str] | None = Field(
        default=None, description="the most this agent may receive (a cap)"
    )
    approval: bool | None = Field(default=None, description="a human must approve each call")
    max_depth: int | None = Field(default=None, ge=1, le=HARD_MAX_DEPTH)
    # Resilience (docs/resilience.md). Not permissions: the most specific
    # setting wins, rather than the tightest.
    idempotent: bool | None = Field(
        default=None, description="calls may be repeated safely: retried on transient failures"
    )
    fallback: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
        description="the agent (with the same skill) delegations go to while this one is down",
    )

    @field_validator("require", "grant")
    @classmethod
    def _scopes_are_tokens(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for scope in value:
                try:
                    parse_scopes(scope)
                except ScopeSyntaxError as exc:
                    raise ValueError(str(exc)) from None
                if parse_scopes(scope) != {scope}:
                    # "", "a b", "a\tb": no user scope could ever match them.
                    raise ValueError(f"{scope!r}: one scope per list item")
        return value


class AgentRule(Rule):
    skills: dict[str, Rule] = Field(default_factory=dict)
    tools: dict[str, Rule] = Field(default_factory=dict)
    resources: dict[str, Rule] = Field(default_factory=dict)
    prompts: dict[str, Rule] = Field(default_factory=dict)

    def actions(self, kind: ActionKind) -> dict[str, Rule]:
        return {
            "skill": self.skills,
            "tool": self.tools,
            "resource": self.resources,
            "prompt": self.prompts,
        }[kind]


class Policy(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    defaults: Rule = Field(default_factory=Rule)
    agents: dict[str, AgentRule] = Field(default_factory=dict)
    # Rate limits and quotas (`policies.limits`): counted by the gateway after
    # a call is allowed, before its token is minted.
    limits: list[LimitRule] = Field(default_factory=list)
    # Coordination rules (`policies.coordination`): holds, cooldowns, leases
    # and budgets per business entity, kept by the gateway inside the same
    # decision, after the rate limits.
    coordination: CoordinationPolicy = Field(default_factory=CoordinationPolicy)
    # What calls cost and what a user may spend on a flow (`policies.prices`).
    prices: Prices = Field(default_factory=Prices)

    @field_validator("limits")
    @classmethod
    def _unique_limit_names(cls, value: list[LimitRule]) -> list[LimitRule]:
        names = [rule.name for rule in value]
        if len(names) != len(set(names)):
            raise ValueError("every limit needs its own name")
        return value

    @cached_property
    def can_hold(self) -> bool:
        """Whether a call can be held under this policy: a rule anywhere asks
        for a human's approval, or a coordination rule defers. Worked out
        once per policy object; the A2A handlers look a task up among the
        held ones only when it is true."""
        rules: list[Rule] = [self.defaults]
        for agent in self.agents.values():
            rules.append(agent)
            for kind in ("skill", "tool", "resource", "prompt"):
                rules.extend(agent.actions(kind).values())
        defers = any(
            isinstance(r, HoldRule | CooldownRule | ExclusiveRule) and r.mode == "defer"
            for r in self.coordination.rules
        )
        return defers or any(rule.approval for rule in rules)

    def rule_trail(
        self, agent_id: str, kind: ActionKind, action: str | None
    ) -> list[tuple[str, Rule]]:
        """The rules that apply, least specific first, each with where it came from."""
        trail: list[tuple[str, Rule]] = [("defaults", self.defaults)]
        for key in ("*", agent_id):
            agent = self.agents.get(key)
            if agent is None:
                continue
            trail.append((f"agents.{key}", agent))
            if action is not None:
                actions = agent.actions(kind)
                for action_key in ("*", action):
                    if action_key in actions:
                        trail.append((f"agents.{key}.{kind}s.{action_key}", actions[action_key]))
        return trail


@dataclass(frozen=True)
class EffectiveRule:
    allow: bool = True
    require: frozenset[str] = frozenset()
    grant: frozenset[str] | None = None  # None: no cap from policy
    approval: bool = False
    max_depth: int = DEFAULT_MAX_DEPTH
    sources: tuple[str, ...] = ()


def merge(trail: Sequence[tuple[str, Rule]], max_depth: int = DEFAULT_MAX_DEPTH) -> EffectiveRule:
    allow, approval, depth = True, False, max_depth
    require: set[str] = set()
    grant: frozenset[str] | None = None
    for _, rule in trail:
        if rule.allow is False:
            allow = False
        if rule.approval:
            approval = True
        if rule.max_depth is not None:
            depth = min(depth, rule.max_depth)
        if rule.require is not None:
            require.update(rule.require)
        if rule.grant is not None:
            grant = frozenset(rule.grant) if grant is None else grant & frozenset(rule.grant)
    return EffectiveRule(
        allow=allow,
        require=frozenset(require),
        grant=grant,
        approval=approval,
        max_depth=depth,
        sources=tuple(source for source, _ in trail),
    )


@dataclass(frozen=True)
class Handoff:
    """How calls to one agent (skill, tool) are made resilient."""

    idempotent: bool | None = None  # None: not said (an MCP tool's own hint may decide)
    fallback: str | None = None


def handoff(policy: Policy, agent_id: str, kind: ActionKind, action: str | None) -> Handoff:
    """The resilience settings for a call: the most specific rule setting each
    key wins. A fallback naming the agent itself means none. Pure."""
    idempotent: bool | None = None
    fallback: str | None = None
    for _, rule in policy.rule_trail(agent_id, kind, action):
        if rule.idempotent is not None:
            idempotent = rule.idempotent
        if rule.fallback is not None:
            fallback = rule.fallback
    if fallback == agent_id or kind != "skill":
        fallback = None
    return Handoff(idempotent, fallback)
