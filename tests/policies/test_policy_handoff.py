"""The policy's resilience keys: `idempotent` and `fallback` (most specific wins)."""

from __future__ import annotations

import pytest

from policies.policy_file import PolicyError, parse_policy
from policies.rules import Handoff, handoff

POLICY = """
version: 1
defaults:
  idempotent: true
agents:
  "*":
    fallback: spare
  inventory:
    idempotent: false
    fallback: inventory-b
    skills:
      lookup:
        idempotent: true
      reserve:
        fallback: inventory-c
    tools:
      search:
        idempotent: false
"""


def test_the_most_specific_setting_wins() -> None:
    policy = parse_policy(POLICY)
    assert handoff(policy, "inventory", "skill", "lookup") == Handoff(True, "inventory-b")
    assert handoff(policy, "inventory", "skill", "reserve") == Handoff(False, "inventory-c")
    assert handoff(policy, "inventory", "skill", None) == Handoff(False, "inventory-b")
    assert handoff(policy, "sales", "skill", "quote") == Handoff(True, "spare")


def test_an_agent_is_never_its_own_fallback_and_tools_have_none() -> None:
    policy = parse_policy(POLICY)
    assert handoff(policy, "spare", "skill", None).fallback is None
    assert handoff(policy, "inventory", "tool", "search") == Handoff(False, None)


def test_nothing_said_is_none() -> None:
    assert handoff(parse_policy("version: 1"), "a", "skill", "x") == Handoff(None, None)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("agents:\n  a:\n    fallback: Not An Id\n", "agents.a.fallback"),
        ("agents:\n  a:\n    idempotent: perhaps\n", "agents.a.idempotent"),
    ],
)
def test_bad_values_name_the_line(text: str, words: str) -> None:
    with pytest.raises(PolicyError, match=words) as refused:
        parse_policy(text, "p.yaml")
    assert "p.yaml:3" in str(refused.value)
