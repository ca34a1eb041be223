"""The policy file's `coordination:` section: every mistake refused with its
line, the keys a call carries, and what each rule asks of a call."""

from __future__ import annotations

import pytest

from policies.coordination import EntityKeyInvalid, EntityKeyMissing, entity_keys, plan
from policies.coordination_rules import CoordinationPolicy
from policies.policy_file import PolicyError, parse_policy

GOOD = """\
coordination:
  entities:
    - entity: customer
      agents: [support, sales]
      key: customer_id
  rules:
    - name: support-first
      kind: hold
      entity: customer
      opened_by: {agents: [support], skills: [escalate]}
      closed_by: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales]}
      ttl: PT24H
"""


def _rule(body: str) -> str:
    return GOOD.split("  rules:\n")[0] + "  rules:\n" + body


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (_rule("    - name: a\n      kind: hold\n      entity: customer\n"), 7, "opened_by"),
        (
            _rule(
                "    - name: a\n      kind: cooldown\n      entity: customer\n"
                "      after: {}\n      blocks: {}\n      duration: 0\n"
            ),
            12,
            "more than 0",
        ),
        (
            _rule(
                "    - name: a\n      kind: budget\n      entity: customer\n"
                "      calls: {}\n      limit: 0\n      per: P1D\n"
            ),
            11,
            "greater than or equal to 1",
        ),
        (_rule("    - name: a\n      kind: queue\n      entity: customer\n"), 7, "kind"),
        (
            _rule(
                "    - name: a\n      kind: exclusive\n      entity: order\n"
                "      calls: {}\n      ttl: PT5M\n"
            ),
            9,
            "no entities entry says where calls name a 'order'",
        ),
        (
            _rule(
                "    - name: a\n      kind: exclusive\n      entity: customer\n"
                "      calls: {agents: [billing]}\n      ttl: PT5M\n"
            ),
            10,
            "would never apply",
        ),
        (
            _rule(
                "    - name: a\n      kind: exclusive\n      entity: customer\n"
                "      calls: {}\n      ttl: PT5M\n"
                "    - name: a\n      kind: exclusive\n      entity: customer\n"
                "      calls: {}\n      ttl: PT5M\n"
            ),
            12,
            "a second rule named 'a'",
        ),
        (GOOD.replace("key: customer_id", "key: 'customer_id['"), 5, "not a JMESPath"),
        (GOOD.replace("ttl: PT24H", "ttl: P400D"), 13, "at most 366 days"),
        (GOOD.replace("blocks: {agents: [sales]}", "blocks: {agent: [sales]}"), 12, "unknown key"),
    ],
)
def test_a_bad_rule_is_refused_with_its_line(text: str, line: int, expected: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "policy.yaml")
    assert f"policy.yaml:{line}:" in str(refused.value), str(refused.value)
    assert expected in str(refused.value)


def test_the_good_file_parses() -> None:
    policy = parse_policy(GOOD, "policy.yaml")
    (rule,) = policy.coordination.rules
    assert rule.name == "support-first"
    assert rule.kind == "hold"


POLICY = parse_policy(GOOD).coordination


def test_keys_are_read_from_every_input_and_must_agree() -> None:
    assert entity_keys(POLICY, "sales", "upsell", [{"x": 1}, {"customer_id": "C"}]) == {
        "customer": "c"  # canonical: case folded (`policies.entity_keys`)
    }
    assert entity_keys(POLICY, "sales", "upsell", [{"customer_id": 7.0}]) == {"customer": "7"}
    with pytest.raises(EntityKeyInvalid, match="given twice"):
        entity_keys(POLICY, "sales", "upsell", [{"customer_id": "C"}, {"customer_id": "D"}])
    with pytest.raises(EntityKeyMissing):
        entity_keys(POLICY, "sales", "upsell", [{"customer": "C"}, "text", 3])
    with pytest.raises(EntityKeyInvalid, match="string or an integer"):
        entity_keys(POLICY, "sales", "upsell", [{"customer_id": True}])
    with pytest.raises(EntityKeyInvalid, match="1 to 256"):
        entity_keys(POLICY, "sales", "upsell", [{"customer_id": "x" * 257}])
    # A call no declaration matches carries no key, and needs none.
    assert entity_keys(POLICY, "billing", "charge", []) == {}


def test_what_a_hold_asks_of_each_call() -> None:
    keys = {"customer": "C"}
    escalate = plan(POLICY, "support", "escalate", keys)
    assert [k.rule for k in escalate.opens] == ["support-first"] and not escalate.blocked_by
    resolve = plan(POLICY, "support", "resolve", keys)
    assert [k.rule for k in resolve.closes] == ["support-first"] and not resolve.blocked_by
    upsell = plan(POLICY, "sales", "upsell", keys)
    assert [k.rule for k in upsell.blocked_by] == ["support-first"]
    assert upsell.blocked_by[0].seconds == 86400
    assert not plan(POLICY, "support", "triage", keys)  # named by no rule: nothing to keep
    assert not plan(POLICY, "sales", "upsell", {})  # no key: no rule applies


def test_an_empty_section_is_no_rules() -> None:
    assert not CoordinationPolicy()
    assert not parse_policy("agents: {}\n").coordination


def test_a_call_naming_no_skill_is_each_of_its_agent_s_skills() -> None:
    # The agent may run it as any skill: "upsell" included, so the hold holds it.
    unsaid = plan(POLICY, "sales", None, {"customer": "C"})
    assert [k.rule for k in unsaid.blocked_by] == ["support-first"]
    # Named "triage" it is not support's escalate: it opens nothing.
    assert not plan(POLICY, "support", "triage", {"customer": "C"}).opens


def test_keys_the_agent_would_read_differently_are_refused() -> None:
    with pytest.raises(EntityKeyInvalid, match="too large"):
        entity_keys(POLICY, "sales", "upsell", [{"customer_id": 2**53 + 1}])
    assert entity_keys(POLICY, "sales", "upsell", [{"customer_id": 2**53}]) == {
        "customer": str(2**53)
    }
    with pytest.raises(EntityKeyInvalid, match="control characters"):
        entity_keys(POLICY, "sales", "upsell", [{"customer_id": "C\x00-1"}])


def test_one_matching_declaration_that_finds_the_key_is_enough() -> None:
    policy = parse_policy(
        GOOD.replace(
            "      key: customer_id\n",
            "      key: customer_id\n    - entity: customer\n      key: customer.id\n",
        )
    ).coordination
    assert entity_keys(policy, "sales", "upsell", [{"customer": {"id": "N"}}]) == {"customer": "n"}
    assert entity_keys(policy, "sales", "upsell", [{"customer_id": "N"}]) == {"customer": "n"}
    with pytest.raises(EntityKeyInvalid, match="given twice"):
        entity_keys(policy, "sales", "upsell", [{"customer_id": "N", "customer": {"id": "M"}}])


def test_a_deferring_rule_lets_the_policy_hold_calls() -> None:
    # `Policy.can_hold`: a hold in `mode: defer` keeps a task at the gateway,
    # so the A2A handlers must look for it among the held ones.
    assert not parse_policy(GOOD).can_hold
    deferring = GOOD.rstrip("\n") + "\n      mode: defer\n"
    assert parse_policy(deferring).can_hold
