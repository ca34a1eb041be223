"""Coordination rules applied to one call (the rules: `policies.coordination_rules`).
Pure: which keys a call carries and what each rule asks of it. Keeping the
state (holds, cooldowns, leases, counts) is the gateway's
(`gateway.delegation.coordination`), inside the one delegation decision.

A call's input is what the agent acts on: an A2A message's data parts, an MCP
tool's arguments, a flow step's input. Every declaration of an entity that
matches the call is evaluated against every input; the values found must
agree (a message naming two customers is refused: the gateway would check one
and the agent might act on the other), and a call a declaration matches must
carry the key. A rule applies to a call only for the entities it carries.

Keys are compared in one canonical form (`policies.entity_keys`): NFKC,
format characters removed, case folded unless the entity is declared
`case: sensitive`, surrounding whitespace stripped. Two spellings of one
customer are one customer; the state and the audit hold the canonical form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from policies.coordination_rules import (
    CooldownRule,
    CoordinationPolicy,
    EntityDeclaration,
    ExclusiveRule,
    HoldRule,
    PriorityRule,
)
from policies.entity_keys import canonical_key

# What a caller needs to plan a call: the rules' type (`coordination_rules`) with the functions.
__all__ = [
    "CoordinationPolicy",
    "EntityKeyInvalid",
    "EntityKeyMissing",
    "Keyed",
    "Plan",
    "entity_keys",
    "plan",
]

MAX_KEY_CHARS = 256
MAX_SAFE_INTEGER = 2**53  # RFC 8259 §6: integers an IEEE 754 double holds exactly


class EntityKeyMissing(ValueError):
    def __init__(self, entity: str, declaration: EntityDeclaration) -> None:
        super().__init__(
            f"this call must name its {entity} at {declaration.key!r} in its input "
            "(the policy's coordination rules apply to it); the input has none"
        )
        self.entity = entity
        self.field = declaration.key


class EntityKeyInvalid(ValueError):
    def __init__(self, entity: str, expression: str, reason: str) -> None:
        super().__init__(f"the {entity} named at {expression!r} {reason}")
        self.entity = entity
        self.field = expression


def entity_keys(
    policy: CoordinationPolicy, agent: str, action: str | None, inputs: Sequence[Any]
) -> dict[str, str]:
    """The entities the call names, each with its key. Raises
    `EntityKeyMissing` or `EntityKeyInvalid` (two values, or not a string or
    integer). Only entities some rule is about are read."""
    ruled = {rule.entity for rule in policy.rules}
    found: dict[str, str] = {}
    wanted: dict[str, EntityDeclaration] = {}
    for declaration in policy.entities:
        if declaration.entity not in ruled or not declaration.matches(agent, action):
            continue
        entity = declaration.entity
        wanted.setdefault(entity, declaration)
        for data in inputs:
            value = _key(entity, declaration, data)
            if value is None:
                continue
            if found.get(entity, value) != value:
                raise EntityKeyInvalid(
                    entity,
                    declaration.key,
                    f"is given twice, as {found[entity]!r} and {value!r}: name one",
                )
            found[entity] = value
    # Missing only when no declaration that matches the call found it.
    for entity, declaration in wanted.items():
        if entity not in found:
            raise EntityKeyMissing(entity, declaration)
    return found


def _key(entity: str, declaration: EntityDeclaration, data: Any) -> str | None:
    """The canonical key ``declaration`` finds in ``data``, if any."""
    expression = declaration.key
    try:
        value = jmespath.search(expression, data)
    except JMESPathError:
        value = None  # a type error on this input: it names nothing here
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a protobuf Value holds every number as a double: 7.0 is 7
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EntityKeyInvalid(entity, expression, "must be a string or an integer")
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        # Past 2^53 a double (a protobuf Value, what the agent reads) is not
        # the integer the JSON said: the gateway would check another key.
        raise EntityKeyInvalid(entity, expression, "is an integer too large: send it as a string")
    key = canonical_key(str(value), declaration.case)
    if not key or len(key) > MAX_KEY_CHARS:
        raise EntityKeyInvalid(entity, expression, f"must be 1 to {MAX_KEY_CHARS} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise EntityKeyInvalid(entity, expression, "must hold no control characters")
    return key


@dataclass(frozen=True)
class Keyed:
    """One rule, for one entity's key."""

    rule: str
    kind: str
    entity: str
    key: str
    seconds: float = 0.0  # the rule's ttl, duration or period
    limit: int = 0  # a budget's
    mode: str = "refuse"  # a hold's, cooldown's or lease's: what a call it blocks gets


@dataclass(frozen=True)
class Plan:
    """What the rules ask of one call: what it must not be blocked by and what
    it takes (leases, budget units) when it is admitted; the holds it opens
    and closes and the cooldowns it starts once it has succeeded (a call
    that is never made, or fails, opens and closes nothing)."""

    blocked_by: tuple[Keyed, ...] = ()  # holds and cooldowns in force refuse it
    leases: tuple[Keyed, ...] = ()
    budgets: tuple[Keyed, ...] = ()
    opens: tuple[Keyed, ...] = ()  # these three: once the call has succeeded
    closes: tuple[Keyed, ...] = ()
    cools: tuple[Keyed, ...] = ()
    keys: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(
            (self.blocked_by, self.leases, self.budgets, self.opens, self.closes, self.cools)
        )

    def rules(self) -> Iterable[Keyed]:
        yield from self.blocked_by
        yield from self.leases
        yield from self.budgets
        yield from self.opens
        yield from self.closes
        yield from self.cools


def plan(
    policy: CoordinationPolicy, agent: str, action: str | None, keys: Mapping[str, str]
) -> Plan:
    """What ``policy``'s rules ask of a call to ``agent``'s ``action`` naming
    ``keys``. A call blocked by a hold it would also close (support resolving
    what it escalated) is not blocked by it."""
    parts: dict[str, list[Keyed]] = {
        name: [] for name in ("blocked_by", "leases", "budgets", "opens", "closes", "cools")
    }
    for rule in policy.rules:
        key = keys.get(rule.entity)
        if key is None:
            continue
        if isinstance(rule, PriorityRule):
            continue  # ranks deferred calls (`CoordinationPolicy.priority`), asks nothing
        if isinstance(rule, HoldRule):
            keyed = Keyed(
                rule.name, rule.kind, rule.entity, key, rule.ttl.total_seconds(), mode=rule.mode
            )
            closes = rule.closed_by.matches(agent, action)
            if closes:
                parts["closes"].append(keyed)
            if rule.opened_by.matches(agent, action):
                parts["opens"].append(keyed)
            elif rule.blocks.matches(agent, action) and not closes:
                parts["blocked_by"].append(keyed)
        elif isinstance(rule, CooldownRule):
            keyed = Keyed(
                rule.name,
                rule.kind,
                rule.entity,
                key,
                rule.duration.total_seconds(),
                mode=rule.mode,
            )
            if rule.blocks.matches(agent, action):
                parts["blocked_by"].append(keyed)
            if rule.after.matches(agent, action):
                parts["cools"].append(keyed)
        elif isinstance(rule, ExclusiveRule):
            if rule.calls.matches(agent, action):
                seconds = rule.ttl.total_seconds()
                parts["leases"].append(
                    Keyed(rule.name, rule.kind, rule.entity, key, seconds, mode=rule.mode)
                )
        elif rule.calls.matches(agent, action):
            seconds = rule.per.total_seconds()
            parts["budgets"].append(
                Keyed(rule.name, rule.kind, rule.entity, key, seconds, rule.limit)
            )
    # A rule that refuses is reported before one that defers: a call both
    # refuse and defer would hold back is refused (deferring it would only
    # make it wait to be refused).
    parts["blocked_by"].sort(key=lambda keyed: keyed.mode == "defer")
    return Plan(**{name: tuple(found) for name, found in parts.items()}, keys=dict(keys))
