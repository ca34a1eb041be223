"""`policies.whatif`: a recorded decision read as a verdict, decided again
under a candidate, and tallied."""

from __future__ import annotations

from dataclasses import replace

from policies.policy import Target
from policies.policy_file import parse_policy
from policies.whatif import EXAMPLES, Recorded, Tally, Verdict, decide_again, stateful_rules

SALES = Target("sales", skills=frozenset({"upsell", "refund"}))
RECORD = Recorded(
    id=1,
    at="2026-11-27T00:00:00+00:00",
    trace_id="0" * 32,
    subject="alice",
    client_id="app",
    actors=("app",),
    target="sales",
    action="upsell",
    kind="skill",
    caller_scopes=frozenset({"sales:read", "sales:write"}),
    requested=None,
    decision="allow",
    outcome="ok",
    granted=("sales:write", "sales:read"),
    approval=False,
)


def test_a_record_says_its_verdict() -> None:
    assert RECORD.before == Verdict("allow", ("sales:read", "sales:write"))
    # An upstream failure is still an allowed call.
    assert replace(RECORD, outcome="upstream_error").before.name == "allow"
    assert replace(RECORD, decision="deny", outcome="denied", granted=()).before.name == "deny"
    assert replace(RECORD, outcome="approval_required", granted=()).before == Verdict("hold")
    assert replace(RECORD, outcome="deferred").before == Verdict("defer")


def test_decided_again_with_the_chain_and_the_scopes_recorded() -> None:
    policy = parse_policy("agents:\n  sales:\n    grant: [sales:read]\n    max_depth: 1\n")
    assert decide_again(policy, RECORD, SALES, 4) == Verdict("allow", ("sales:read",))
    # actors[0] is the client; an agent after it makes the call a second hop.
    onward = replace(RECORD, actors=("app", "planner"))
    assert decide_again(policy, onward, SALES, 4) == Verdict("deny")
    held = parse_policy("agents:\n  sales:\n    skills:\n      upsell:\n        approval: true\n")
    assert decide_again(held, RECORD, SALES, 4) == Verdict("hold")
    # Scopes asked for beyond the caller's are refused, as at the token endpoint.
    greedy = replace(RECORD, requested=frozenset({"sales:admin"}))
    assert decide_again(parse_policy("version: 1"), greedy, SALES, 4) == Verdict("deny")


def test_the_tally_groups_changes_and_keeps_a_few_examples() -> None:
    tally = Tally()
    after = Verdict("deny")
    for n in range(5):
        tally.replayed_one(replace(RECORD, id=n), after, (), keep_each=False)
    tally.replayed_one(replace(RECORD, id=9, subject="bob"), RECORD.before, (), keep_each=True)
    tally.not_replayed("why", {"id": 10})
    tally.skip("not a decision", {"id": 11})
    assert (tally.decisions, tally.replayed, tally.changed) == (7, 6, 5)
    [(key, group)] = tally.changes.items()
    assert key == ("alice", "sales", "skill", "upsell", RECORD.before, after)
    assert group.count == 5 and [e["id"] for e in group.examples] == list(range(EXAMPLES))
    assert tally.each == [
        {"id": 9, "before": RECORD.before.as_dict(), "after": RECORD.before.as_dict()}
    ]
    assert tally.unreplayable["why"].count == 1 and tally.skipped["not a decision"].count == 1


def test_the_candidates_limits_and_coordination_rules_are_named() -> None:
    policy = parse_policy(
        """\
limits:
  - {name: per-user, rate: 5/minute, per: [user], agents: [sales]}
  - {name: elsewhere, rate: 5/minute, per: [user], agents: [billing]}
coordination:
  entities:
    - {entity: account, agents: [sales], key: account}
  rules:
    - {name: one-at-a-time, kind: exclusive, entity: account, ttl: 60, calls: {agents: [sales]}}
"""
    )
    assert stateful_rules(policy, RECORD) == [
        "rate limit per-user",
        "coordination rule one-at-a-time",
    ]
