"""Coordination rules: how calls of agents that do not know about each other
may follow one another for the same business entity (a customer, an order).
Pure: which keys a call carries and what each rule asks of it. Keeping the
state (holds, cooldowns, leases, counts) is the gateway's
(`gateway.delegation.coordination`), inside the one delegation decision.

```yaml
coordination:
  entities:                    # where a call's input names an entity
    - entity: customer
      agents: [support, sales]
      skills: ["*"]
      key: customer_id         # JMESPath over the call's input (jmespath.org)
      case: insensitive        # the default; `sensitive` keeps `ab-1` and `AB-1` apart
  rules:
    - name: support-first
      kind: hold               # opened by one call, closed by another (or its ttl)
      entity: customer
      opened_by: {agents: [support], skills: [escalate]}
      closed_by: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales]}
      ttl: PT24H               # ISO 8601 duration, or seconds
    - name: sales-waits
      kind: cooldown           # after a call succeeds, others wait
      entity: customer
      after: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales]}
      duration: PT2H
    - name: one-writer
      kind: exclusive          # one call in flight per entity
      entity: order
      calls: {agents: [inventory, orders], skills: [adjust, amend]}
      ttl: PT5M
    - name: contact-cap
      kind: budget             # at most `limit` calls per entity per period
      entity: customer
      calls: {agents: [sales]}
      limit: 3
      per: P7D
```

What each rule asks of a call: `policies.coordination`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from policies.entity_keys import Case, canonical_key

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Long enough for any business rule, short enough that a typo in the unit
# (seconds for days) is caught: a year.
MAX_DURATION = timedelta(days=366)


class Calls(BaseModel):
    """Which calls a rule names: to these agents (or MCP servers), of these
    skills (or tools); `*` is any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    skills: list[str] = Field(default_factory=lambda: ["*"], min_length=1)

    def matches(self, agent: str, action: str | None) -> bool:
        """``action`` None: a message naming no skill, which the agent may
        run as any of its skills -- so it is each of them here, and leaving
        the skill unsaid never gets round a rule (as for the policy's
        skill rules, `Delegations.strictest_skill`)."""
        agents = "*" in self.agents or agent in self.agents
        skills = "*" in self.skills or action is None or action in self.skills
        return agents and skills

    def overlaps(self, other: Calls) -> bool:
        """Whether some call matches both (for the policy check)."""

        def meet(a: list[str], b: list[str]) -> bool:
            return "*" in a or "*" in b or bool(set(a) & set(b))

        return meet(self.agents, other.agents) and meet(self.skills, other.skills)


def _duration(value: timedelta) -> timedelta:
    if value <= timedelta(0) or value > MAX_DURATION:
        raise ValueError(f"must be more than 0 and at most {MAX_DURATION.days} days")
    return value


Duration = Annotated[timedelta, AfterValidator(_duration)]


class EntityDeclaration(Calls):
    """Where the input of the calls it matches names an ``entity``."""

    entity: str = Field(pattern=NAME)
    key: str = Field(min_length=1, max_length=512)
    # How its keys compare (`policies.entity_keys`); every declaration of one
    # entity must say the same.
    case: Case = "insensitive"

    @field_validator("key")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            jmespath.compile(value)
        except JMESPathError as exc:
            raise ValueError(f"not a JMESPath expression: {exc}") from None
        return value


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    entity: str = Field(pattern=NAME)

    def selectors(self) -> dict[str, Calls]:
        raise NotImplementedError


Mode = Literal["refuse", "defer"]


class HoldRule(_Rule):
    kind: Literal["hold"]
    opened_by: Calls
    closed_by: Calls
    blocks: Calls
    ttl: Duration
    # refuse: a blocked call is refused (409); defer: it waits, and is made
    # when the hold closes (`gateway.delegation.deferrals`).
    mode: Mode = "refuse"

    def selectors(self) -> dict[str, Calls]:
        return {"opened_by": self.opened_by, "closed_by": self.closed_by, "blocks": self.blocks}


class CooldownRule(_Rule):
    kind: Literal["cooldown"]
    after: Calls
    blocks: Calls
    duration: Duration
    mode: Mode = "refuse"

    def selectors(self) -> dict[str, Calls]:
        return {"after": self.after, "blocks": self.blocks}


class ExclusiveRule(_Rule):
    kind: Literal["exclusive"]
    calls: Calls
    ttl: Duration = Field(description="the longest a call holds the entity")
    # refuse: a call finding the lease taken is refused; defer: it waits, and
    # the calls waiting get the lease one at a time, in priority order.
    mode: Mode = "refuse"

    def selectors(self) -> dict[str, Calls]:
        return {"calls": self.calls}


class BudgetRule(_Rule):
    kind: Literal["budget"]
    calls: Calls
    limit: int = Field(ge=1, le=1_000_000)
    per: Duration

    def selectors(self) -> dict[str, Calls]:
        return {"calls": self.calls}


class PriorityRule(_Rule):
    """Which deferred calls for one entity go first when what held them back
    ends: those matching ``order[0]``, then ``order[1]``, ...; a call matching
    none comes last. All but the first rank give up after ``ttl``."""

    kind: Literal["priority"]
    order: list[Calls] = Field(min_length=2, max_length=16)
    ttl: Duration

    def selectors(self) -> dict[str, Calls]:
        return {f"order.{i}": calls for i, calls in enumerate(self.order)}

    def rank(self, agent: str, action: str | None) -> int:
        return next(
            (i for i, calls in enumerate(self.order) if calls.matches(agent, action)),
            len(self.order),
        )


Rule = Annotated[
    HoldRule | CooldownRule | ExclusiveRule | BudgetRule | PriorityRule,
    Field(discriminator="kind"),
]


class CoordinationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entities: list[EntityDeclaration] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CoordinationPolicy:
        # Each problem at its own place, so `switchboard policy check` names
        # the rule's line, not the section's.
        problems: list[InitErrorDetails] = []

        def problem(loc: tuple[str | int, ...], message: str) -> None:
            error = PydanticCustomError("coordination", "{message}", {"message": message})
            problems.append(InitErrorDetails(type=error, loc=loc, input=None))

        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                problem(("rules", index, "name"), f"a second rule named {rule.name!r}")
            seen.add(rule.name)
            declared = [d for d in self.entities if d.entity == rule.entity]
            if not declared:
                problem(
                    ("rules", index, "entity"),
                    f"no entities entry says where calls name a {rule.entity!r}",
                )
                continue
            for place, calls in rule.selectors().items():
                if not any(calls.overlaps(d) for d in declared):
                    problem(
                        ("rules", index, *(int(p) if p.isdigit() else p for p in place.split("."))),
                        f"names calls whose input no entities entry for {rule.entity!r} "
                        "reads, so the rule would never apply to them",
                    )
        cases: dict[str, str] = {}
        for index, declaration in enumerate(self.entities):
            said = cases.setdefault(declaration.entity, declaration.case)
            if said != declaration.case:
                problem(
                    ("entities", index, "case"),
                    f"another entities entry for {declaration.entity!r} says case: {said}; "
                    "one entity's keys compare one way",
                )
        ranked = [r.entity for r in self.rules if isinstance(r, PriorityRule)]
        for index, rule in enumerate(self.rules):
            if isinstance(rule, PriorityRule) and ranked.count(rule.entity) > 1:
                problem(("rules", index, "entity"), f"a second priority rule for {rule.entity!r}")
                ranked.remove(rule.entity)
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def case(self, entity: str) -> Case:
        """How ``entity``'s keys compare (insensitive unless declared)."""
        for declaration in self.entities:
            if declaration.entity == entity:
                return declaration.case
        return "insensitive"

    def canonical(self, entity: str, key: str) -> str:
        """``key`` of ``entity`` as it is compared and stored."""
        return canonical_key(key, self.case(entity))

    def names(self, agent: str) -> bool:
        """Whether some rule may apply to a call to ``agent`` (one of its
        calls must name an entity a rule is about)."""
        ruled = {rule.entity for rule in self.rules}
        return any(d.entity in ruled and d.matches(agent, None) for d in self.entities)

    def priority(self, entity: str, agent: str, action: str | None) -> tuple[int, float | None]:
        """A deferred call's rank for ``entity`` (0 first) and how long it may
        wait (None: until released)."""
        for rule in self.rules:
            if isinstance(rule, PriorityRule) and rule.entity == entity:
                rank = rule.rank(agent, action)
                return rank, (rule.ttl.total_seconds() if rank > 0 else None)
        return 0, None

    def __bool__(self) -> bool:
        return bool(self.rules)
