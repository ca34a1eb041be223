"""A what-if: one recorded decision decided again under a candidate policy.

Pure, as `authorize()` is: the gateway reads the audit records and the
targets' cards (`gateway.delegation.whatif`), this says what each record's
decision was, what the candidate decides for the same call, and tallies the
differences. A verdict is what the policy decides for a call -- ``allow``
(with the scopes it grants), ``deny``, ``hold`` (a human must approve it
first) -- or ``defer`` (a coordination rule made it wait, recorded only:
whether the candidate would defer depends on state no longer known).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from policies.limits import CallFacts, applicable
from policies.policy import ActionKind, Decision, DelegationQuery, Target, authorize
from policies.rules import Policy

VerdictName = Literal["allow", "deny", "hold", "defer"]
EXAMPLES = 3  # record ids kept per group (and per reason a record is not replayed)

# Why a recorded decision cannot be decided again: it depended on state
# that is not kept, so the what-if counts it under this name, not a guess.
RATE_LIMITED = "refused by a rate limit: the counters at the time are not kept"
COORDINATION = "held back by a coordination rule: its state at the time is not kept"
DEFERRED = "deferred by a coordination rule: its state at the time is not kept"
NO_INPUT = "refused by a coordination rule for its input: the input is not kept"
GONE = "the target is no longer registered: its card is not known"
BUDGET = "refused for a flow's budget: what was spent at the time is not kept"
UNREPLAYABLE_OUTCOMES: Mapping[str, str] = {
    "budget_spent": BUDGET,
    "rate_limited": RATE_LIMITED,
    "coordination": COORDINATION,
    "deferred": DEFERRED,
    "invalid_request": NO_INPUT,
}
# Records in the window that are not decisions to replay (not counted in N).
APPROVED_CALL = "a call made once a human approved it (its hold is replayed on its request)"
NOT_DECIDED = (
    "no policy decision recorded with it (an outage, a request refused before its "
    "decision, a flow's own event, or a record older than this gateway's what-if)"
)


@dataclass(frozen=True)
class Verdict:
    name: VerdictName
    scopes: tuple[str, ...] = ()  # granted: for ``allow`` only

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.name, "scopes": list(self.scopes)}


@dataclass(frozen=True)
class Recorded:
    """One audit record of a decision, as the what-if needs it."""

    id: int
    at: str
    trace_id: str
    subject: str
    client_id: str
    actors: tuple[str, ...]
    target: str
    action: str | None
    kind: ActionKind
    caller_scopes: frozenset[str]
    requested: frozenset[str] | None
    decision: str
    outcome: str
    granted: tuple[str, ...]
    approval: bool

    @property
    def before(self) -> Verdict:
        if self.outcome == "approval_required":
            return Verdict("hold")
        if self.outcome == "deferred":
            return Verdict("defer")
        if self.decision == "allow":
            return Verdict("allow", tuple(sorted(self.granted)))
        return Verdict("deny")


def verdict(decision: Decision) -> Verdict:
    """What the policy decides for a call, as a record of it says it."""
    if not decision.allowed:
        return Verdict("deny")
    if decision.approval_required:
        return Verdict("hold")
    return Verdict("allow", tuple(sorted(decision.granted)))


def decide_again(policy: Policy, record: Recorded, target: Target, max_depth: int) -> Verdict:
    """The candidate's verdict for the call ``record`` is the decision of."""
    query = DelegationQuery(
        record.caller_scopes,
        record.actors[1:],  # actors[0] is the client: the policy's chain is the agents
        target,
        record.action,
        record.kind,
        record.requested,
    )
    return verdict(authorize(policy, query, max_depth=max_depth))


def stateful_rules(policy: Policy, record: Recorded) -> list[str]:
    """The candidate's rate limits and coordination rules that would count or
    hold back this call once allowed: whether they would refuse it depends
    on state the what-if does not know, so it names them."""
    facts = CallFacts(record.subject, record.client_id, record.target, record.action or "")
    named = [f"rate limit {a.name}" for a in applicable(policy.limits, facts, record.action)]
    for rule in policy.coordination.rules:
        if any(c.matches(record.target, record.action) for c in rule.selectors().values()):
            named.append(f"coordination rule {rule.name}")
    return named


@dataclass
class Group:
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, example: dict[str, Any]) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


GroupKey = tuple[str, str, str, str | None, Verdict, Verdict]


@dataclass
class Tally:
    """What a replay found, added up record by record (and page by page)."""

    decisions: int = 0
    replayed: int = 0
    changes: dict[GroupKey, Group] = field(default_factory=dict)
    unreplayable: dict[str, Group] = field(default_factory=dict)
    skipped: dict[str, Group] = field(default_factory=dict)
    # Allowed by the candidate, then counted by its limits or coordination
    # rules: how often each would have had a say.
    subject_to: dict[str, int] = field(default_factory=dict)
    each: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, why: str, example: dict[str, Any]) -> None:
        self.skipped.setdefault(why, Group()).add(example)

    def not_replayed(self, why: str, example: dict[str, Any]) -> None:
        self.decisions += 1
        self.unreplayable.setdefault(why, Group()).add(example)

    def replayed_one(
        self, record: Recorded, after: Verdict, stateful: Sequence[str], keep_each: bool
    ) -> None:
        self.decisions += 1
        self.replayed += 1
        before = record.before
        if after.name == "allow":
            for name in stateful:
                self.subject_to[name] = self.subject_to.get(name, 0) + 1
        if keep_each:
            self.each.append(
                {"id": record.id, "before": before.as_dict(), "after": after.as_dict()}
            )
        if before == after:
            return
        key = (record.subject, record.target, record.kind, record.action, before, after)
        self.changes.setdefault(key, Group()).add(example_of(record))

    @property
    def changed(self) -> int:
        return sum(group.count for group in self.changes.values())


def example_of(record: Recorded) -> dict[str, Any]:
    """How a group names one of its records: by id, and by trace (`GET /audit?trace=`)."""
    return {"id": record.id, "at": record.at, "trace_id": record.trace_id}
