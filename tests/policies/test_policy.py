"""The delegation policy model and the one pure decision, `authorize()`.

`authorize()` is what the token endpoint, the pipeline, agent listings and
`POST /policies/explain` all call, so these tests pin down its contract
directly: every denial and the order the checks run in, the scopes that pass
on (user ∩ card needs ∩ policy grant, with only `require` passing when neither
side declares anything), how nested rules merge (a more specific rule only
tightens), and what `Target.from_card` makes of malformed cards. Property tests
(hypothesis) check the invariants over random policies, cards and chains.

"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies.policy import (
    ActionKind,
    Decision,
    DelegationQuery,
    Denial,
    Target,
    authorize,
    may_use,
)
from policies.rules import (
    DEFAULT_MAX_DEPTH,
    HARD_MAX_DEPTH,
    AgentRule,
    EffectiveRule,
    Policy,
    Rule,
    merge,
)

# --- Helpers --------------------------------------------------------------------


def scopes(text: str = "") -> frozenset[str]:
    """`scopes("a b")` -> frozenset({"a", "b"}): keeps the tests readable."""
    return frozenset(text.split())


def alternatives(*alts: str) -> tuple[frozenset[str], ...]:
    """Card security requirement alternatives, each a space-separated scope list."""
    return tuple(scopes(alt) for alt in alts)


def policy(data: Mapping[str, Any] | None = None) -> Policy:
    """A policy from the same plain data a YAML file would hold."""
    return Policy.model_validate(dict(data or {}))


def target(
    agent_id: str = "crm",
    requirements: tuple[frozenset[str], ...] = (),
    skill_requirements: Mapping[str, tuple[frozenset[str], ...]] | None = None,
    skills: Iterable[str] | None = None,
) -> Target:
    return Target(
        agent_id=agent_id,
        requirements=requirements,
        skill_requirements=dict(skill_requirements or {}),
        skills=None if skills is None else frozenset(skills),
    )


def decide(
    pol: Policy,
    user: str | frozenset[str],
    tgt: Target | None = None,
    *,
    chain: Sequence[str] = (),
    action: str | None = None,
    kind: ActionKind = "skill",
    requested: str | frozenset[str] | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Decision:
    """authorize() with strings for scope sets, so each test states only what matters."""
    user_scopes = scopes(user) if isinstance(user, str) else user
    req = scopes(requested) if isinstance(requested, str) else requested
    query = DelegationQuery(
        user_scopes=user_scopes,
        chain=tuple(chain),
        target=tgt if tgt is not None else target(),
        action=action,
        kind=kind,
        requested_scopes=req,
    )
    return authorize(pol, query, max_depth=max_depth)


def assert_denied(decision: Decision, denial: Denial) -> None:
    """Every denial has the same shape: nothing granted, no approval, one reason."""
    assert not decision.allowed
    assert decision.denial is denial, decision.reasons
    assert decision.granted == frozenset()
    assert decision.approval_required is False
    assert decision.reasons and all(decision.reasons)


def assert_allowed(decision: Decision, granted: str | frozenset[str]) -> None:
    want = scopes(granted) if isinstance(granted, str) else granted
    assert decision.allowed, decision.reasons
    assert decision.denial is None
    assert decision.granted == want, decision.reasons
    assert decision.reasons and all(decision.reasons)


def card(
    requirements: Any = None, skills: Any = None, **extra: Any
) -> dict[str, Any]:  # a raw card dict
    data: dict[str, Any] = dict(extra)
    if requirements is not None:
        data["securityRequirements"] = requirements
    if skills is not None:
        data["skills"] = skills
    return data


def requirement(**schemes: list[str]) -> dict[str, Any]:
    """One A2A 1.0 security requirement: `{"schemes": {name: {"list": [...]}}}`."""
    return {"schemes": {name: {"list": listed} for name, listed in schemes.items()}}


# A policy that passes the user's scopes on unchanged (a grant covering them),
# so tests about denials are not confused by step 7.
OPEN = policy({"defaults": {"grant": ["read", "write", "admin", "crm:read"]}})


# --- 1. Unknown action ------------------------------------------------------------


def test_unknown_skill_is_denied_when_the_card_lists_its_skills() -> None:
    decision = decide(OPEN, "read", target(skills=["lookup"]), action="delete")
    assert_denied(decision, Denial.UNKNOWN_ACTION)
    assert "delete" in decision.reasons[0] and "crm" in decision.reasons[0]


def test_known_skill_and_agent_as_a_whole_are_not_unknown() -> None:
    tgt = target(skills=["lookup"])
    assert_allowed(decide(OPEN, "read", tgt, action="lookup"), "read")
    assert_allowed(decide(OPEN, "read", tgt, action=None), "read")


def test_skills_are_not_checked_when_the_card_does_not_say_which_exist() -> None:
    """skills=None means "unknown" (an MCP server): any action name may be tried."""
    assert_allowed(decide(OPEN, "read", target(skills=None), action="anything"), "read")


def test_tools_are_not_checked_against_the_skill_list() -> None:
    """Step 1 only concerns skills: tools are not declared on A2A cards."""
    decision = decide(OPEN, "read", target(skills=["lookup"]), action="query", kind="tool")
    assert_allowed(decision, "read")


def test_an_empty_skill_list_makes_every_skill_unknown() -> None:
    assert_denied(decide(OPEN, "read", target(skills=[]), action="x"), Denial.UNKNOWN_ACTION)


def test_unknown_action_comes_before_a_policy_denial() -> None:
    pol = policy({"defaults": {"allow": False}})
    assert_denied(decide(pol, "read", target(skills=[]), action="x"), Denial.UNKNOWN_ACTION)


# --- 2. allow: false --------------------------------------------------------------

# Every place in the trail where `allow: false` can stand for agent crm, skill lookup.
DENY_AT_EACH_LEVEL = [
    pytest.param({"defaults": {"allow": False}}, id="defaults"),
    pytest.param({"agents": {"*": {"allow": False}}}, id="agents.*"),
    pytest.param({"agents": {"*": {"skills": {"*": {"allow": False}}}}}, id="agents.*.skills.*"),
    pytest.param(
        {"agents": {"*": {"skills": {"lookup": {"allow": False}}}}}, id="agents.*.skills.lookup"
    ),
    pytest.param({"agents": {"crm": {"allow": False}}}, id="agents.crm"),
    pytest.param(
        {"agents": {"crm": {"skills": {"*": {"allow": False}}}}}, id="agents.crm.skills.*"
    ),
    pytest.param(
        {"agents": {"crm": {"skills": {"lookup": {"allow": False}}}}},
        id="agents.crm.skills.lookup",
    ),
]


@pytest.mark.parametrize("data", DENY_AT_EACH_LEVEL)
def test_allow_false_anywhere_in_the_trail_denies(data: dict[str, Any]) -> None:
    decision = decide(policy(data), "read", target(skills=["lookup"]), action="lookup")
    assert_denied(decision, Denial.POLICY)
    assert "crm" in decision.reasons[0]


@pytest.mark.parametrize("data", DENY_AT_EACH_LEVEL)
def test_allow_false_cannot_be_undone_by_a_more_specific_allow_true(data: dict[str, Any]) -> None:
    """A denial sticks: the most specific rule saying allow: true does not reopen it."""
    reopen = {"agents": {"crm": {"allow": True, "skills": {"lookup": {"allow": True}}}}}
    merged = _deep_merge(data, reopen)
    decision = decide(policy(merged), "read", target(skills=["lookup"]), action="lookup")
    assert_denied(decision, Denial.POLICY)


def _deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if key in out and isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = _deep_merge(out[key], value)
        elif key not in out:
            out[key] = value
        # an existing scalar (the allow: false under test) is kept
    return out


def test_allow_false_on_another_agent_or_skill_does_not_apply() -> None:
    pol = policy(
        {
            "defaults": {"grant": ["read"]},
            "agents": {
                "billing": {"allow": False},
                "crm": {
                    "skills": {"delete": {"allow": False}},
                    "tools": {"lookup": {"allow": False}},
                },
            },
        }
    )
    tgt = target(skills=["lookup", "delete"])
    assert_allowed(decide(pol, "read", tgt, action="lookup"), "read")
    assert_allowed(decide(pol, "read", tgt), "read")
    assert_denied(decide(pol, "read", tgt, action="delete"), Denial.POLICY)
    # The same name as a tool is a different action with its own rules.
    assert_denied(decide(pol, "read", tgt, action="lookup", kind="tool"), Denial.POLICY)


def test_a_skill_denial_does_not_deny_the_agent_as_a_whole() -> None:
    pol = policy(
        {"defaults": {"grant": ["read"]}, "agents": {"crm": {"skills": {"*": {"allow": False}}}}}
    )
    assert_allowed(decide(pol, "read", target(skills=["lookup"])), "read")
    assert_denied(decide(pol, "read", target(skills=["lookup"]), action="lookup"), Denial.POLICY)


def test_policy_denial_comes_before_depth_and_cycle() -> None:
    pol = policy({"defaults": {"allow": False}})
    chain = ["crm", "a", "b", "c", "d", "e"]
    assert_denied(decide(pol, "read", chain=chain), Denial.POLICY)


def test_policy_denial_reason_names_the_rule_that_denied() -> None:
    """`POST /policies/explain` shows this reason to the operator: it must point at
    the rule to edit, not at an unrelated, more specific rule that merely exists."""
    pol = policy({"defaults": {"allow": False}, "agents": {"crm": {"approval": True}}})
    decision = decide(pol, "read")
    assert_denied(decision, Denial.POLICY)
    assert "(defaults)" in decision.reasons[0]


# --- 3. Depth and cycles ----------------------------------------------------------


def test_depth_is_the_chain_length_plus_one() -> None:
    for n in range(DEFAULT_MAX_DEPTH):
        chain = [f"agent{i}" for i in range(n)]
        assert decide(OPEN, "read", chain=chain).depth == n + 1


def test_default_depth_limit() -> None:
    ok = [f"agent{i}" for i in range(DEFAULT_MAX_DEPTH - 1)]
    too_deep = [f"agent{i}" for i in range(DEFAULT_MAX_DEPTH)]
    assert_allowed(decide(OPEN, "read", chain=ok), "read")
    decision = decide(OPEN, "read", chain=too_deep)
    assert_denied(decision, Denial.DEPTH)
    assert decision.depth == DEFAULT_MAX_DEPTH + 1
    assert str(DEFAULT_MAX_DEPTH + 1) in decision.reasons[0]
    assert str(DEFAULT_MAX_DEPTH) in decision.reasons[0]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"defaults": {"max_depth": 2}}, id="defaults"),
        pytest.param({"agents": {"*": {"max_depth": 2}}}, id="agents.*"),
        pytest.param({"agents": {"crm": {"max_depth": 2}}}, id="agents.crm"),
        pytest.param({"agents": {"crm": {"skills": {"lookup": {"max_depth": 2}}}}}, id="skill"),
    ],
)
def test_policy_max_depth_at_any_level(data: dict[str, Any]) -> None:
    pol = policy(_deep_merge(data, {"defaults": {"grant": ["read"]}}))
    tgt = target(skills=["lookup"])
    assert_allowed(decide(pol, "read", tgt, chain=["a"], action="lookup"), "read")
    assert_denied(decide(pol, "read", tgt, chain=["a", "b"], action="lookup"), Denial.DEPTH)


def test_max_depth_argument_is_a_global_cap_the_policy_cannot_raise() -> None:
    pol = policy({"defaults": {"grant": ["read"], "max_depth": 10}})
    chain = ["a", "b"]
    assert_allowed(decide(pol, "read", chain=chain, max_depth=3), "read")
    assert_denied(decide(pol, "read", chain=chain, max_depth=2), Denial.DEPTH)


def test_max_depth_argument_can_raise_the_default() -> None:
    chain = [f"agent{i}" for i in range(7)]
    assert_denied(decide(OPEN, "read", chain=chain), Denial.DEPTH)
    assert_allowed(decide(OPEN, "read", chain=chain, max_depth=8), "read")


def test_the_more_restrictive_of_argument_and_policy_wins() -> None:
    pol = policy({"defaults": {"grant": ["read"]}, "agents": {"crm": {"max_depth": 1}}})
    assert_denied(decide(pol, "read", chain=["a"], max_depth=8), Denial.DEPTH)
    assert_allowed(decide(pol, "read", chain=[], max_depth=8), "read")


def test_cycle_when_the_target_already_acted() -> None:
    decision = decide(OPEN, "read", target("crm"), chain=["support", "crm", "sales"])
    assert_denied(decision, Denial.CYCLE)
    assert "support -> crm -> sales" in decision.reasons[0]


def test_cycle_directly_back_to_the_caller() -> None:
    assert_denied(decide(OPEN, "read", target("crm"), chain=["crm"]), Denial.CYCLE)


def test_depth_comes_before_cycle() -> None:
    chain = ["crm", "a", "b", "c"]
    assert_denied(decide(OPEN, "read", target("crm"), chain=chain), Denial.DEPTH)


def test_cycle_comes_before_scope_checks() -> None:
    decision = decide(OPEN, "read", target("crm"), chain=["crm"], requested="admin")
    assert_denied(decision, Denial.CYCLE)


# --- 4. Requested scopes ------------------------------------------------------------


def test_requested_scopes_beyond_the_users_are_refused() -> None:
    decision = decide(OPEN, "read", requested="read write admin")
    assert_denied(decision, Denial.SCOPE_EXCEEDS_SUBJECT)
    assert "admin write" in decision.reasons[0]
    assert "read" not in decision.reasons[0].split(":")[-1]


def test_requested_scopes_narrow_what_passes_on() -> None:
    assert_allowed(decide(OPEN, "read write", requested="read"), "read")


def test_requesting_nothing_passes_nothing() -> None:
    assert_allowed(decide(OPEN, "read write", requested=frozenset()), frozenset())


def test_scope_exceeds_subject_comes_before_missing_scope() -> None:
    pol = policy({"defaults": {"require": ["admin"]}})
    assert_denied(decide(pol, "read", requested="write"), Denial.SCOPE_EXCEEDS_SUBJECT)


# --- 5. require ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"defaults": {"require": ["admin"]}}, id="defaults"),
        pytest.param({"agents": {"*": {"require": ["admin"]}}}, id="agents.*"),
        pytest.param({"agents": {"crm": {"require": ["admin"]}}}, id="agents.crm"),
        pytest.param(
            {"agents": {"crm": {"skills": {"lookup": {"require": ["admin"]}}}}}, id="skill"
        ),
    ],
)
def test_missing_required_scope_is_refused(data: dict[str, Any]) -> None:
    decision = decide(policy(data), "read", target(skills=["lookup"]), action="lookup")
    assert_denied(decision, Denial.MISSING_SCOPE)
    assert "admin" in decision.reasons[0]


def test_require_adds_up_across_levels() -> None:
    pol = policy({"defaults": {"require": ["read"]}, "agents": {"crm": {"require": ["crm:read"]}}})
    assert_denied(decide(pol, "read"), Denial.MISSING_SCOPE)
    assert_denied(decide(pol, "crm:read"), Denial.MISSING_SCOPE)
    assert decide(pol, "read crm:read").allowed


def test_require_is_checked_against_the_user_not_the_request() -> None:
    """`require` is about who may delegate; narrowing the request does not hide it."""
    pol = policy({"defaults": {"require": ["admin"]}})
    decision = decide(pol, "admin read", requested="read")
    # The user holds admin, so the check passes; with neither side declaring,
    # only `require` passes on and the request excluded it.
    assert_allowed(decision, frozenset())


def test_missing_scope_comes_before_card_requirement() -> None:
    pol = policy({"defaults": {"require": ["admin"]}})
    tgt = target(requirements=alternatives("crm:read"))
    assert_denied(decide(pol, "read", tgt), Denial.MISSING_SCOPE)


def test_a_flow_without_a_grant_is_named_not_the_user() -> None:
    """Issue 57: a flow's step refused for a scope its user holds but the flow
    was never granted blamed the user; the reason names the flow and the fix."""
    pol = policy({"agents": {"sales": {"require": ["sales:quote"]}}})
    # The run holds what the flow was granted: nothing, with no grant.
    decision = decide(
        pol, "", target("sales", skills=["ship"]), chain=["quote-flow"], action="ship"
    )
    assert_denied(decision, Denial.MISSING_SCOPE)
    assert decision.reasons[0] == (
        "sales skill ship requires sales:quote, which quote-flow was not granted: the policy "
        "gives it no grant, so it passes on only what its card or its require names "
        "(add sales:quote to agents.quote-flow.grant in the policy)"
    )


def test_a_grant_that_lacks_the_scope_is_named() -> None:
    pol = policy(
        {
            "agents": {
                "quote-flow": {"grant": ["inventory:read"]},
                "sales": {"require": ["sales:quote"]},
            }
        }
    )
    decision = decide(pol, "inventory:read", target("sales"), chain=["quote-flow"])
    assert decision.reasons[0] == (
        "sales requires sales:quote, which the grant of quote-flow lacks "
        "(add sales:quote to agents.quote-flow.grant in the policy)"
    )
    tgt = target("sales", requirements=alternatives("sales:quote"))
    decision = decide(
        policy({"agents": {"quote-flow": {"grant": []}}}), "", tgt, chain=["quote-flow"]
    )
    assert_denied(decision, Denial.CARD_REQUIREMENT)
    assert "which the grant of quote-flow lacks" in decision.reasons[0]


def test_the_user_is_named_when_the_chain_passes_the_scope_on() -> None:
    pol = policy(
        {
            "agents": {
                "quote-flow": {"grant": ["sales:quote"]},
                "sales": {"require": ["sales:quote"]},
            }
        }
    )
    for chain in ((), ("quote-flow",)):
        decision = decide(pol, "", target("sales"), chain=chain)
        assert decision.reasons[0] == "sales requires sales:quote, which the user lacks"


# --- 6. Card security requirements ----------------------------------------------------


def test_card_requirement_with_no_alternative_satisfied() -> None:
    tgt = target(requirements=alternatives("crm:read", "admin write"))
    decision = decide(OPEN, "read write", tgt)
    assert_denied(decision, Denial.CARD_REQUIREMENT)
    assert "crm:read or admin write" in decision.reasons[0]


def test_card_requirement_one_alternative_is_enough() -> None:
    tgt = target(requirements=alternatives("crm:read", "admin write"))
    assert_allowed(decide(policy(), "admin write", tgt), "admin write")
    assert_allowed(decide(policy(), "crm:read", tgt), "crm:read")


def test_card_requirement_is_checked_against_the_user_not_the_request() -> None:
    """The user holds what the card needs; the request only narrows what passes on."""
    tgt = target(requirements=alternatives("crm:read write"))
    assert_allowed(decide(policy(), "crm:read write", tgt, requested="crm:read"), "crm:read")


def test_an_empty_alternative_is_always_satisfied() -> None:
    """OpenAPI semantics: `{}` among the alternatives makes the scopes optional."""
    tgt = target(requirements=alternatives("admin", ""))
    assert decide(policy(), "read", tgt).allowed


def test_skill_requirements_replace_the_cards() -> None:
    tgt = target(
        requirements=alternatives("admin"),
        skill_requirements={"lookup": alternatives("read")},
        skills=["lookup", "delete"],
    )
    # The skill's own requirement applies, not the card's.
    assert_allowed(decide(policy(), "read", tgt, action="lookup"), "read")
    assert_denied(decide(policy(), "admin", tgt, action="lookup"), Denial.CARD_REQUIREMENT)
    # Skills without their own requirement, and the agent as a whole, use the card's.
    assert_denied(decide(policy(), "read", tgt, action="delete"), Denial.CARD_REQUIREMENT)
    assert_denied(decide(policy(), "read", tgt), Denial.CARD_REQUIREMENT)
    assert_allowed(decide(policy(), "admin", tgt, action="delete"), "admin")


def test_skill_requirements_do_not_apply_to_a_tool_of_the_same_name() -> None:
    tgt = target(
        requirements=alternatives("admin"), skill_requirements={"lookup": alternatives("read")}
    )
    assert_denied(
        decide(policy(), "read", tgt, action="lookup", kind="tool"), Denial.CARD_REQUIREMENT
    )


def test_an_empty_skill_requirement_tuple_replaces_the_cards_with_nothing() -> None:
    """`()` for a skill is "declared, nothing needed" -- distinct from absent."""
    tgt = target(requirements=alternatives("admin"), skill_requirements={"open": ()})
    assert decide(policy(), "read", tgt, action="open").allowed


# --- 7. What passes on -------------------------------------------------------------------


def test_card_needs_without_policy_grant() -> None:
    tgt = target(requirements=alternatives("read write"))
    assert_allowed(decide(policy(), "read write admin", tgt), "read write")


def test_policy_grant_without_card_needs() -> None:
    pol = policy({"agents": {"crm": {"grant": ["read", "crm:read"]}}})
    assert_allowed(decide(pol, "read write admin"), "read")


def test_card_needs_and_policy_grant_intersect() -> None:
    pol = policy({"agents": {"crm": {"grant": ["read", "admin"]}}})
    tgt = target(requirements=alternatives("read write"))
    assert_allowed(decide(pol, "read write admin", tgt), "read")


def test_neither_side_declares_only_require_passes_on() -> None:
    pol = policy({"defaults": {"require": ["read"]}})
    decision = decide(pol, "read write admin")
    assert_allowed(decision, "read")
    assert any("not passed on: admin write" in r for r in decision.reasons)


def test_neither_side_declares_and_nothing_required_passes_nothing() -> None:
    decision = decide(policy(), "read write")
    assert_allowed(decision, frozenset())
    assert any("none passed on" in r for r in decision.reasons)


def test_union_of_satisfied_alternatives_passes_on() -> None:
    tgt = target(requirements=alternatives("read", "write", "admin"))
    assert_allowed(decide(policy(), "read write other", tgt), "read write")
    assert_allowed(decide(policy(), "write", tgt), "write")


def test_scopes_of_an_unsatisfied_alternative_do_not_pass_on() -> None:
    """The user holds `admin` but not all of `admin write`: that alternative is not
    what the target will be used through, so `admin` stays behind."""
    tgt = target(requirements=alternatives("read", "admin write"))
    assert_allowed(decide(policy(), "read admin", tgt), "read")


def test_only_empty_alternatives_count_as_declaring_nothing() -> None:
    """A card that needs a scheme but no scopes (e.g. plain bearer) does not
    constrain: the policy grant, or else only `require`, decides."""
    tgt = target(requirements=alternatives(""))
    assert_allowed(decide(policy(), "read write", tgt), frozenset())
    assert_allowed(decide(policy({"defaults": {"grant": ["read"]}}), "read write", tgt), "read")


def test_an_empty_grant_caps_at_nothing() -> None:
    """`grant: []` is a declared cap of nothing, not "no cap"."""
    pol = policy({"agents": {"crm": {"grant": []}}})
    tgt = target(requirements=alternatives("read"))
    assert_allowed(decide(pol, "read", tgt), frozenset())


def test_request_narrows_before_needs_and_grant() -> None:
    pol = policy({"defaults": {"grant": ["read", "write"]}})
    tgt = target(requirements=alternatives("read write"))
    assert_allowed(decide(pol, "read write admin", tgt, requested="write admin"), "write")


def test_require_does_not_pass_on_when_a_side_declares() -> None:
    """Once the card or the grant declares scopes, `require` alone adds nothing."""
    pol = policy({"defaults": {"require": ["admin"], "grant": ["read"]}})
    assert_allowed(decide(pol, "admin read"), "read")


def test_skill_needs_replace_card_needs_in_the_grant() -> None:
    tgt = target(
        requirements=alternatives("admin"),
        skill_requirements={"lookup": alternatives("read")},
        skills=["lookup"],
    )
    assert_allowed(decide(policy(), "admin read", tgt, action="lookup"), "read")
    assert_allowed(decide(policy(), "admin read", tgt), "admin")


# --- Approval, reasons, rules -----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"defaults": {"approval": True}}, id="defaults"),
        pytest.param({"agents": {"*": {"approval": True}}}, id="agents.*"),
        pytest.param({"agents": {"crm": {"approval": True}}}, id="agents.crm"),
        pytest.param({"agents": {"crm": {"skills": {"*": {"approval": True}}}}}, id="skills.*"),
        pytest.param({"agents": {"crm": {"skills": {"lookup": {"approval": True}}}}}, id="skill"),
    ],
)
def test_approval_from_any_level_propagates(data: dict[str, Any]) -> None:
    # A more specific approval: false does not clear it.
    pol = policy(
        _deep_merge(data, {"agents": {"crm": {"skills": {"lookup": {"approval": False}}}}})
    )
    decision = decide(pol, "read", target(skills=["lookup"]), action="lookup")
    assert decision.allowed and decision.approval_required
    assert any("approval" in r for r in decision.reasons)


def test_no_approval_by_default() -> None:
    decision = decide(OPEN, "read")
    assert decision.allowed and not decision.approval_required
    assert not any("approval" in r for r in decision.reasons)


def test_a_denial_never_asks_for_approval() -> None:
    pol = policy({"defaults": {"approval": True, "require": ["admin"]}})
    assert_denied(decide(pol, "read"), Denial.MISSING_SCOPE)


def test_rules_list_the_trail_least_specific_first() -> None:
    pol = policy(
        {
            "agents": {
                "*": {"skills": {"*": {}, "lookup": {}}},
                "crm": {"skills": {"*": {}, "lookup": {}, "other": {}}, "tools": {"lookup": {}}},
                "billing": {},
            }
        }
    )
    decision = decide(pol, "read", target(skills=["lookup"]), action="lookup")
    assert decision.rules == (
        "defaults",
        "agents.*",
        "agents.*.skills.*",
        "agents.*.skills.lookup",
        "agents.crm",
        "agents.crm.skills.*",
        "agents.crm.skills.lookup",
    )
    tool = decide(pol, "read", target(), action="lookup", kind="tool")
    assert tool.rules == ("defaults", "agents.*", "agents.crm", "agents.crm.tools.lookup")
    # Without an action, no skill or tool rules apply.
    assert decide(pol, "read").rules == ("defaults", "agents.*", "agents.crm")


def test_rules_are_listed_on_denials_too() -> None:
    pol = policy({"agents": {"crm": {"allow": False}}})
    decision = decide(pol, "read")
    assert decision.rules == ("defaults", "agents.crm")
    assert "agents.crm" in decision.reasons[0]


def test_allowed_reason_names_the_rules() -> None:
    pol = policy({"agents": {"crm": {"grant": ["read"]}}})
    decision = decide(pol, "read write")
    assert decision.reasons[0] == "allowed by defaults, agents.crm"
    assert "not passed on: write" in decision.reasons


def test_as_dict() -> None:
    pol = policy({"agents": {"crm": {"grant": ["read", "write"], "approval": True}}})
    assert decide(pol, "write read", chain=["a"]).as_dict() == {
        "decision": "allow",
        "granted_scopes": ["read", "write"],
        "approval_required": True,
        "reasons": [
            "allowed by defaults, agents.crm",
            "policy requires human approval for crm",
        ],
        "denial": None,
        "depth": 2,
        "rules": ["defaults", "agents.crm"],
    }
    denied = decide(pol, "read", requested="admin").as_dict()
    assert denied["decision"] == "deny"
    assert denied["denial"] == "scope_exceeds_subject"
    assert denied["granted_scopes"] == []


# --- merge() ------------------------------------------------------------------------------


def test_merge_of_nothing_is_the_permissive_default() -> None:
    assert merge([]) == EffectiveRule()
    assert merge([], max_depth=7).max_depth == 7


def test_merge_require_unions() -> None:
    merged = merge([("a", Rule(require=["x"])), ("b", Rule()), ("c", Rule(require=["y", "x"]))])
    assert merged.require == {"x", "y"}


def test_merge_grant_intersects_and_unset_does_not_constrain() -> None:
    assert merge([("a", Rule())]).grant is None
    merged = merge(
        [("a", Rule(grant=["x", "y", "z"])), ("b", Rule()), ("c", Rule(grant=["y", "z", "w"]))]
    )
    assert merged.grant == frozenset({"y", "z"})
    # A more specific grant cannot add scopes the broader one left out.
    narrower = merge([("a", Rule(grant=["x"])), ("b", Rule(grant=["x", "y"]))])
    assert narrower.grant == frozenset({"x"})
    # Disjoint grants leave an empty cap, which is not the same as no cap.
    assert merge([("a", Rule(grant=["x"])), ("b", Rule(grant=["y"]))]).grant == frozenset()


def test_merge_max_depth_is_the_minimum_including_the_argument() -> None:
    trail = [("a", Rule(max_depth=3)), ("b", Rule(max_depth=5)), ("c", Rule())]
    assert merge(trail).max_depth == 3
    assert merge(trail, max_depth=2).max_depth == 2
    assert merge([("a", Rule(max_depth=HARD_MAX_DEPTH))], max_depth=4).max_depth == 4


def test_merge_approval_and_denial_stick() -> None:
    merged = merge(
        [("a", Rule(allow=False, approval=True)), ("b", Rule(allow=True, approval=False))]
    )
    assert merged.allow is False
    assert merged.approval is True
    # The other way round, the more specific rule tightens.
    merged = merge(
        [("a", Rule(allow=True, approval=False)), ("b", Rule(allow=False, approval=True))]
    )
    assert merged.allow is False
    assert merged.approval is True


def test_merge_keeps_the_sources_in_order() -> None:
    assert merge([("x", Rule()), ("y", Rule()), ("z", Rule())]).sources == ("x", "y", "z")


def test_merge_agent_rule_fields_count_but_its_skills_do_not() -> None:
    """An AgentRule in the trail contributes its own fields; its nested skills
    only count when rule_trail puts them in the trail."""
    agent = AgentRule(grant=["x"], skills={"s": Rule(allow=False)})
    merged = merge([("agents.crm", agent)])
    assert merged.allow is True
    assert merged.grant == frozenset({"x"})


def test_wildcard_agent_and_skill_rules_merge_with_the_specific_ones() -> None:
    pol = policy(
        {
            "defaults": {"grant": ["a", "b", "c", "d"], "max_depth": 6},
            "agents": {
                "*": {
                    "require": ["r1"],
                    "grant": ["a", "b", "c"],
                    "skills": {"*": {"require": ["r2"], "max_depth": 5}},
                },
                "crm": {
                    "grant": ["a", "b"],
                    "max_depth": 4,
                    "skills": {
                        "*": {"approval": True},
                        "lookup": {"grant": ["b", "c"], "max_depth": 3},
                    },
                },
            },
        }
    )
    merged = merge(policy_trail(pol, "crm", "lookup"), max_depth=10)
    assert merged.require == {"r1", "r2"}
    assert merged.grant == frozenset({"b"})
    assert merged.max_depth == 3
    assert merged.approval is True
    assert merged.allow is True
    # Another agent gets only the "*" rules.
    other = merge(policy_trail(pol, "billing", "lookup"), max_depth=10)
    assert other.require == {"r1", "r2"}
    assert other.grant == frozenset({"a", "b", "c"})
    assert other.max_depth == 5
    assert other.approval is False


def policy_trail(pol: Policy, agent: str, action: str | None) -> list[tuple[str, Rule]]:
    return pol.rule_trail(agent, "skill", action)


# --- Rule validation ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ['has"quote', "back\\slash", "two words", " lead", "tail ", "é"])
def test_rule_rejects_invalid_scope_tokens(bad: str) -> None:
    with pytest.raises(ValidationError):
        Rule(require=[bad])
    with pytest.raises(ValidationError):
        Rule(grant=["ok", bad])


@pytest.mark.parametrize("bad", ["", "read\twrite", "read\nwrite"])
def test_rule_rejects_empty_and_whitespace_scopes(bad: str) -> None:
    """Such a scope can never match a user's scope, so `grant: ["read\\twrite"]`
    silently grants nothing and `require: [""]` silently denies everything."""
    with pytest.raises(ValidationError):
        Rule(require=[bad])


@pytest.mark.parametrize("depth", [0, -1, HARD_MAX_DEPTH + 1])
def test_rule_max_depth_bounds(depth: int) -> None:
    with pytest.raises(ValidationError):
        Rule(max_depth=depth)


def test_rules_are_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        Rule.model_validate({"allow": True, "deny": True})
    with pytest.raises(ValidationError):
        Rule().allow = False  # type: ignore[misc]


# --- Target.from_card -----------------------------------------------------------------------


def test_from_card_reads_requirements_skills_and_skill_requirements() -> None:
    raw = card(
        [requirement(oauth=["read", "write"], other=["x"]), requirement(oauth=["admin"])],
        skills=[
            {"id": "lookup", "securityRequirements": [requirement(oauth=["read"])]},
            {"id": "delete"},
            {"id": "open", "securityRequirements": []},
        ],
    )
    tgt = Target.from_card("crm", raw)
    assert tgt.agent_id == "crm"
    assert tgt.requirements == (scopes("read write x"), scopes("admin"))
    assert tgt.skill_requirements == {"lookup": (scopes("read"),)}
    assert tgt.skills == frozenset({"lookup", "delete", "open"})


def test_from_card_without_skills_knows_there_are_none() -> None:
    tgt = Target.from_card("crm", {})
    assert tgt.requirements == ()
    assert tgt.skill_requirements == {}
    assert tgt.skills == frozenset()


def test_from_card_scheme_without_scopes_is_an_empty_alternative() -> None:
    """A normalised card with plain bearer: `[{"schemes": {"bearer": {}}}]`."""
    tgt = Target.from_card("crm", card([{"schemes": {"bearer": {}}}]))
    assert tgt.requirements == (frozenset(),)


@pytest.mark.parametrize(
    "requirements",
    [
        pytest.param({"schemes": {"oauth": {"list": ["read"]}}}, id="a-dict-not-a-list"),
        pytest.param("read", id="a-string"),
        pytest.param(42, id="an-int"),
        pytest.param(True, id="a-bool"),
    ],
)
def test_from_card_non_list_requirements_are_ignored(requirements: Any) -> None:
    assert Target.from_card("crm", card(requirements)).requirements == ()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param("oauth", frozenset(), id="entry-a-string"),
        pytest.param(None, frozenset(), id="entry-none"),
        pytest.param(["read"], frozenset(), id="entry-a-list"),
        pytest.param(7, frozenset(), id="entry-an-int"),
        pytest.param({}, frozenset(), id="no-schemes-key"),
        pytest.param({"schemes": None}, frozenset(), id="schemes-none"),
        pytest.param({"schemes": {}}, frozenset(), id="schemes-empty"),
        pytest.param({"schemes": {"oauth": None}}, frozenset(), id="scheme-none"),
        pytest.param({"schemes": {"oauth": "read"}}, frozenset(), id="scheme-a-string"),
        pytest.param({"schemes": {"oauth": ["read"]}}, frozenset(), id="scheme-a-list"),
        pytest.param({"schemes": {"oauth": {}}}, frozenset(), id="no-list-key"),
        pytest.param({"schemes": {"oauth": {"list": None}}}, frozenset(), id="list-none"),
        pytest.param(
            {"schemes": {"oauth": {"list": ["read", 1, None, {"x": 1}, ["y"]]}}},
            scopes("read"),
            id="non-string-scopes-dropped",
        ),
    ],
)
def test_from_card_malformed_requirement_entries_do_not_crash(
    entry: Any, expected: frozenset[str]
) -> None:
    """A malformed entry still counts as one alternative, with the scopes it does
    name; the well-formed alternative after it is read as usual. (An entry naming
    no scopes is an always-satisfied alternative; registry validation is what
    keeps such shapes out of stored cards.)"""
    tgt = Target.from_card("crm", card([entry, requirement(oauth=["admin"])]))
    assert tgt.requirements == (expected, scopes("admin"))


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"schemes": ["oauth"]}, id="schemes-a-list"),
        pytest.param({"schemes": "oauth"}, id="schemes-a-string"),
        pytest.param({"schemes": {"oauth": {"list": 5}}}, id="list-an-int"),
        pytest.param({"schemes": {"oauth": {"list": True}}}, id="list-a-bool"),
    ],
)
def test_from_card_malformed_schemes_or_list_do_not_crash(entry: Any) -> None:
    """`_requirements` checks `isinstance(scheme, Mapping)` but not `schemes` itself,
    and iterates `list` without checking it is a list."""
    Target.from_card("crm", card([entry]))


@pytest.mark.parametrize("skills", [5, True, 1.5])
def test_from_card_non_iterable_skills_do_not_crash(skills: Any) -> None:
    assert Target.from_card("crm", {"skills": skills}).skills == frozenset()


def test_from_card_string_scope_list_is_not_split_into_characters() -> None:
    tgt = Target.from_card("crm", card([{"schemes": {"oauth": {"list": "read"}}}]))
    assert "r" not in tgt.requirements[0]


def test_from_card_malformed_skills_entries_are_skipped() -> None:
    raw = card(
        skills=[
            "lookup",
            None,
            3,
            ["x"],
            {"id": "ok", "securityRequirements": "junk"},
            {"name": "no id"},
        ]
    )
    tgt = Target.from_card("crm", raw)
    # Only mapping entries count; one without an id gets the id "None".
    assert tgt.skills == frozenset({"ok", "None"})


@pytest.mark.parametrize("skills", [{"lookup": {}}, "lookup", None, []])
def test_from_card_skills_of_other_shapes_do_not_crash(skills: Any) -> None:
    tgt = Target.from_card("crm", {"skills": skills})
    assert tgt.skills == frozenset()


def test_from_card_malformed_skill_requirements_do_not_drop_the_cards() -> None:
    raw = card(
        [requirement(oauth=["admin"])],
        skills=[{"id": "lookup", "securityRequirements": requirement(oauth=["admin"])}],
    )
    tgt = Target.from_card("crm", raw)
    assert_denied(decide(policy(), "read", tgt, action="lookup"), Denial.CARD_REQUIREMENT)


def test_from_card_empty_skill_requirements_inherit_the_cards() -> None:
    """An empty list cannot be told from an absent field in the A2A protobuf JSON,
    so a skill with `securityRequirements: []` uses the card's requirements."""
    raw = card(
        [requirement(oauth=["admin"])], skills=[{"id": "lookup", "securityRequirements": []}]
    )
    tgt = Target.from_card("crm", raw)
    assert "lookup" not in tgt.skill_requirements
    assert_denied(decide(policy(), "read", tgt, action="lookup"), Denial.CARD_REQUIREMENT)


def test_from_card_then_authorize_end_to_end() -> None:
    raw = card(
        [requirement(gateway=["crm:read", "crm:write"])],
        skills=[
            {"id": "lookup", "securityRequirements": [requirement(gateway=["crm:read"])]},
            {"id": "update"},
        ],
    )
    tgt = Target.from_card("crm", raw)
    user = "crm:read crm:write admin"
    assert_allowed(decide(policy(), user, tgt, action="lookup"), "crm:read")
    assert_allowed(decide(policy(), user, tgt, action="update"), "crm:read crm:write")
    assert_denied(decide(policy(), user, tgt, action="delete"), Denial.UNKNOWN_ACTION)


# --- may_use -----------------------------------------------------------------------------------


def test_may_use_when_one_skill_is_allowed() -> None:
    pol = policy({"agents": {"crm": {"allow": True, "require": ["x"], "skills": {"lookup": {}}}}})
    tgt = target(skills=["lookup"])
    assert not may_use(pol, scopes("read"), tgt)
    assert may_use(pol, scopes("x"), tgt)


def test_may_use_a_skill_with_lighter_card_requirements() -> None:
    tgt = target(
        requirements=alternatives("admin"),
        skill_requirements={"lookup": alternatives("read")},
        skills=["lookup"],
    )
    assert may_use(policy(), scopes("read"), tgt)
    assert not may_use(policy(), scopes("write"), tgt)


def test_may_use_respects_chain_and_depth() -> None:
    tgt = target("crm")
    assert not may_use(OPEN, scopes("read"), tgt, chain=("crm",))
    assert not may_use(OPEN, scopes("read"), tgt, chain=("a", "b"), max_depth=2)
    assert may_use(OPEN, scopes("read"), tgt, chain=("a", "b"), max_depth=3)


def test_may_use_everything_denied() -> None:
    pol = policy({"agents": {"crm": {"allow": False}}})
    assert not may_use(pol, scopes("read"), target(skills=["lookup"]))


# --- Properties ----------------------------------------------------------------------------------
#
# The strategies are built once, at module level, over scope *indexes*; each
# example then draws a small random alphabet and maps index i to alphabet[i % n].
# That keeps the alphabets random (and small, so random sets overlap often)
# without hypothesis rebuilding and re-validating strategies for every example.

AGENT_IDS = ("A", "B", "C")
CHAIN_IDS = ("A", "B", "C", "D", "E")
SKILL_IDS = ("s1", "s2", "s3")
# Actions that may be asked for: the card's possible skills and one never on a card.
ACTIONS = (*SKILL_IDS, "t1")
MAX_ALPHABET = 5
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

RawRule = tuple[bool | None, frozenset[int] | None, frozenset[int] | None, bool | None, int | None]

ALPHABETS = st.lists(
    st.text(alphabet="abcxyz:._", min_size=1, max_size=4),
    min_size=1,
    max_size=MAX_ALPHABET,
    unique=True,
)
INDEXES = st.frozensets(st.integers(0, MAX_ALPHABET - 1), max_size=MAX_ALPHABET)
# A trail has up to seven rules, so denials and depth limits are made rare per
# rule; otherwise most examples would stop at step 2 or 3.
RAW_RULES: st.SearchStrategy[RawRule] = st.tuples(
    st.sampled_from([None] * 8 + [True, False]),  # allow
    st.sampled_from([None, None, None, frozenset()]) | INDEXES,  # require
    st.none() | INDEXES,  # grant
    st.none() | st.booleans(),  # approval
    st.sampled_from([None] * 12 + list(range(1, 7))),  # max_depth
)
RAW_ACTIONS = st.dictionaries(st.sampled_from(("*", *ACTIONS)), RAW_RULES, max_size=2)
RAW_POLICIES = st.tuples(
    RAW_RULES,
    st.dictionaries(
        st.sampled_from(("*", *AGENT_IDS)),
        st.tuples(RAW_RULES, RAW_ACTIONS, RAW_ACTIONS),
        max_size=3,
    ),
)
RAW_ALTERNATIVES = st.lists(INDEXES, max_size=2)
# agent id, card-level alternatives, per-skill alternatives, the skills it declares
RawTarget = tuple[str, list[frozenset[int]], dict[str, list[frozenset[int]]], frozenset[str] | None]
RAW_TARGETS: st.SearchStrategy[RawTarget] = st.tuples(
    st.sampled_from(AGENT_IDS),
    RAW_ALTERNATIVES,
    st.dictionaries(st.sampled_from(SKILL_IDS), RAW_ALTERNATIVES, max_size=2),
    st.none() | st.frozensets(st.sampled_from(SKILL_IDS)),
)
# A hop in a chain delegates to the agent as a whole, so only the card-level
# requirements matter; agents from a wider set than the policy names, so chains
# can grow past the depth caps before they run out of fresh agents.
RAW_HOPS: st.SearchStrategy[RawTarget] = st.tuples(
    st.sampled_from(CHAIN_IDS), RAW_ALTERNATIVES, st.just({}), st.none()
)
KINDS: st.SearchStrategy[ActionKind] = st.sampled_from(["skill", "tool"])
DEPTH_CAPS = st.integers(1, 8)


class Names:
    """Maps the strategies' scope indexes onto one example's alphabet."""

    def __init__(self, alphabet: Sequence[str]) -> None:
        self.alphabet = alphabet

    def set(self, indexes: frozenset[int]) -> frozenset[str]:
        return frozenset(self.alphabet[i % len(self.alphabet)] for i in indexes)

    def list(self, indexes: frozenset[int] | None) -> list[str] | None:
        return None if indexes is None else sorted(self.set(indexes))

    def rule(self, raw: RawRule) -> Rule:
        allow, require, grant, approval, max_depth = raw
        return Rule(
            allow=allow,
            require=self.list(require),
            grant=self.list(grant),
            approval=approval,
            max_depth=max_depth,
        )

    def actions(self, raw: Mapping[str, RawRule]) -> dict[str, Rule]:
        return {key: self.rule(value) for key, value in raw.items()}

    def policy(self, raw: tuple[RawRule, Mapping[str, Any]]) -> Policy:
        defaults, agents = raw
        return Policy(
            defaults=self.rule(defaults),
            agents={
                key: AgentRule(
                    **self.rule(own).model_dump(),
                    skills=self.actions(skills),
                    tools=self.actions(tools),
                )
                for key, (own, skills, tools) in agents.items()
            },
        )

    def target(self, raw: RawTarget) -> Target:
        agent_id, alts, skill_alts, skills = raw
        return Target(
            agent_id=agent_id,
            requirements=tuple(self.set(alt) for alt in alts),
            skill_requirements={
                skill: tuple(self.set(alt) for alt in value) for skill, value in skill_alts.items()
            },
            skills=skills,
        )


World = tuple[Policy, DelegationQuery, int]


def _world(raw: tuple[Any, ...]) -> World:
    alphabet, raw_policy, user, chain, raw_target, action, kind, requested, max_depth = raw
    names = Names(alphabet)
    query = DelegationQuery(
        user_scopes=names.set(user),
        chain=tuple(chain),
        target=names.target(raw_target),
        action=action,
        kind=kind,
        # Often beyond the user's scopes, so SCOPE_EXCEEDS_SUBJECT comes up.
        requested_scopes=None if requested is None else names.set(requested),
    )
    return names.policy(raw_policy), query, max_depth


# A random policy, target and query over one small random alphabet, and a depth cap.
WORLDS: st.SearchStrategy[World] = st.tuples(
    ALPHABETS,
    RAW_POLICIES,
    INDEXES,
    st.lists(st.sampled_from(CHAIN_IDS), max_size=4, unique=True),
    RAW_TARGETS,
    st.none() | st.sampled_from(ACTIONS),
    KINDS,
    st.none() | INDEXES,
    DEPTH_CAPS,
).map(_world)


def effective(pol: Policy, query: DelegationQuery, max_depth: int) -> EffectiveRule:
    return merge(pol.rule_trail(query.target.agent_id, query.kind, query.action), max_depth)


def declared_alternatives(query: DelegationQuery) -> tuple[frozenset[str], ...]:
    """The card alternatives that apply to the query, restated independently of the code:
    a skill's own requirements replace the card's."""
    tgt = query.target
    if (
        query.kind == "skill"
        and query.action is not None
        and query.action in tgt.skill_requirements
    ):
        return tgt.skill_requirements[query.action]
    return tgt.requirements


# Each check states one invariant of a single decision; one property test runs
# them all on the same random worlds, which keeps the generation cost paid once.


def check_granted_within_user_and_request(
    pol: Policy, query: DelegationQuery, max_depth: int, decision: Decision
) -> None:
    """(a) never more than the user holds; (b) never more than was requested."""
    assert decision.granted <= query.user_scopes
    if query.requested_scopes is not None:
        assert decision.granted <= query.requested_scopes


def check_granted_within_policy_grant_and_card_needs(
    pol: Policy, query: DelegationQuery, max_depth: int, decision: Decision
) -> None:
    """(c) the policy's grant is a cap; so are the scopes of the satisfied card
    alternatives when they name any; with neither, only `require` passes on."""
    rule = effective(pol, query, max_depth)
    if rule.grant is not None:
        assert decision.granted <= rule.grant
    satisfied = [alt for alt in declared_alternatives(query) if alt <= query.user_scopes]
    needs = frozenset().union(*satisfied)
    if needs:
        assert decision.granted <= needs
    elif rule.grant is None:
        assert decision.granted <= rule.require


def check_decision_shape(
    pol: Policy, query: DelegationQuery, max_depth: int, decision: Decision
) -> None:
    """(d) a denial grants nothing and needs no approval; every decision says why
    and names the rules it used; depth is the chain length plus one."""
    rule = effective(pol, query, max_depth)
    assert decision.allowed == (decision.denial is None)
    if decision.allowed:
        assert decision.approval_required == rule.approval
        assert query.target.agent_id not in query.chain
        assert decision.depth <= rule.max_depth <= max_depth
        assert rule.allow
        assert rule.require <= query.user_scopes
    else:
        assert decision.granted == frozenset()
        assert decision.approval_required is False
        assert len(decision.reasons) == 1
    assert decision.reasons
    assert all(decision.reasons)
    assert decision.depth == len(query.chain) + 1
    assert decision.rules == rule.sources
    assert decision.rules[0] == "defaults"


def check_denial_order(
    pol: Policy, query: DelegationQuery, max_depth: int, decision: Decision
) -> None:
    """The denial is the first failing check, in the order the code documents."""
    rule = effective(pol, query, max_depth)
    tgt = query.target
    alts = declared_alternatives(query)
    checks = [
        (
            Denial.UNKNOWN_ACTION,
            query.action is not None
            and query.kind == "skill"
            and tgt.skills is not None
            and query.action not in tgt.skills,
        ),
        (Denial.POLICY, not rule.allow),
        (Denial.DEPTH, len(query.chain) + 1 > rule.max_depth),
        (Denial.CYCLE, tgt.agent_id in query.chain),
        (
            Denial.SCOPE_EXCEEDS_SUBJECT,
            query.requested_scopes is not None and not query.requested_scopes <= query.user_scopes,
        ),
        (Denial.MISSING_SCOPE, not rule.require <= query.user_scopes),
        (
            Denial.CARD_REQUIREMENT,
            bool(alts) and not any(alt <= query.user_scopes for alt in alts),
        ),
    ]
    expected = next((denial for denial, failed in checks if failed), None)
    assert decision.denial == expected


def check_deterministic(
    pol: Policy, query: DelegationQuery, max_depth: int, decision: Decision
) -> None:
    """(e) pure: the same inputs, and an equal copy of them, give the same decision."""
    assert authorize(pol, query, max_depth=max_depth) == decision
    copy = Policy.model_validate(pol.model_dump())
    assert authorize(copy, query, max_depth=max_depth) == decision


def check_may_use(pol: Policy, query: DelegationQuery, max_depth: int, decision: Decision) -> None:
    """(g) listings agree with calls: may_use is True exactly when the agent as a
    whole or one of its declared skills may be delegated to."""
    tgt = query.target
    actions: list[str | None] = [None, *(tgt.skills or ())]
    expected = any(
        authorize(
            pol, DelegationQuery(query.user_scopes, query.chain, tgt, action), max_depth=max_depth
        ).allowed
        for action in actions
    )
    assert may_use(pol, query.user_scopes, tgt, max_depth=max_depth, chain=query.chain) == expected
    if query.action is None and query.requested_scopes is None and decision.allowed:
        assert may_use(pol, query.user_scopes, tgt, max_depth=max_depth, chain=query.chain)


def _tighten(rule: Rule, extra: Rule) -> Rule:
    """`rule` with `extra` folded in the policy's own way, so nothing loosens."""
    merged = merge([("rule", rule), ("extra", extra)], max_depth=HARD_MAX_DEPTH)
    unset_depth = rule.max_depth is None and extra.max_depth is None
    return Rule(
        allow=merged.allow,
        require=sorted(merged.require),
        grant=None if merged.grant is None else sorted(merged.grant),
        approval=merged.approval,
        max_depth=None if unset_depth else merged.max_depth,
    )


def check_a_more_specific_rule_never_allows_more(
    pol: Policy, query: DelegationQuery, max_depth: int, decision: Decision, raw: RawRule
) -> None:
    """Folding an extra rule into the target's most specific rule can turn an allow
    into a deny, never a deny into an allow, and never drops an approval."""
    extra = Names(sorted(query.user_scopes | {"zz"})).rule(raw)
    agent_id = query.target.agent_id
    agents = dict(pol.agents)
    current = agents.get(agent_id, AgentRule())
    if query.action is None:
        own = _tighten(current, extra)
        agents[agent_id] = AgentRule(**own.model_dump(), skills=current.skills, tools=current.tools)
    else:
        field = "skills" if query.kind == "skill" else "tools"
        actions = dict(getattr(current, field))
        actions[query.action] = _tighten(actions.get(query.action, Rule()), extra)
        agents[agent_id] = current.model_copy(update={field: actions})
    tighter = Policy(defaults=pol.defaults, agents=agents)
    after = authorize(tighter, query, max_depth=max_depth)
    if after.allowed:
        assert decision.allowed
        assert after.approval_required >= decision.approval_required


@PROPERTY_SETTINGS
@given(WORLDS, RAW_RULES)
def test_property_authorize_invariants(world: World, extra: RawRule) -> None:
    """Every invariant of one decision, on random policies, cards and queries."""
    pol, query, max_depth = world
    decision = authorize(pol, query, max_depth=max_depth)
    check_granted_within_user_and_request(pol, query, max_depth, decision)
    check_granted_within_policy_grant_and_card_needs(pol, query, max_depth, decision)
    check_decision_shape(pol, query, max_depth, decision)
    check_denial_order(pol, query, max_depth, decision)
    check_deterministic(pol, query, max_depth, decision)
    check_may_use(pol, query, max_depth, decision)
    check_a_more_specific_rule_never_allows_more(pol, query, max_depth, decision, extra)


Chain = tuple[Policy, list[Target], frozenset[str], int]


def _chain(raw: tuple[Any, ...]) -> Chain:
    alphabet, raw_policy, raw_targets, user, max_depth = raw
    names = Names(alphabet)
    hops = [names.target(t) for t in raw_targets]
    return names.policy(raw_policy), hops, names.set(user), max_depth


CHAINS: st.SearchStrategy[Chain] = st.tuples(
    ALPHABETS,
    RAW_POLICIES,
    st.lists(RAW_HOPS, min_size=1, max_size=6),
    INDEXES,
    DEPTH_CAPS,
).map(_chain)


@PROPERTY_SETTINGS
@given(CHAINS)
def test_property_scopes_never_grow_along_a_chain(world: Chain) -> None:
    """(f) each hop's subject holds what the previous hop was granted: the scopes
    only shrink, the depth goes up one per hop, and the chain stops at the limit."""
    pol, hops, held, max_depth = world
    chain: tuple[str, ...] = ()
    for hop in hops:
        decision = authorize(pol, DelegationQuery(held, chain, hop), max_depth=max_depth)
        assert decision.depth == len(chain) + 1
        if not decision.allowed:
            break
        assert decision.granted <= held
        assert decision.depth <= max_depth
        held = decision.granted
        chain = (*chain, hop.agent_id)
    # No agent acted twice, and no chain outgrew the cap.
    assert len(set(chain)) == len(chain)
    assert len(chain) <= max_depth


@PROPERTY_SETTINGS
@given(ALPHABETS, st.lists(RAW_RULES, max_size=6), st.randoms(use_true_random=False))
def test_property_merge_is_order_independent_and_tightening(
    alphabet: list[str], raw_rules: list[RawRule], rnd: Random
) -> None:
    """merge() is a meet: the order of the rules does not change the effective
    rule (only the sources), and each added rule tightens every field."""
    names = Names(alphabet)
    trail = [(f"r{i}", names.rule(raw)) for i, raw in enumerate(raw_rules)]
    shuffled = list(trail)
    rnd.shuffle(shuffled)
    a, b = merge(trail), merge(shuffled)
    assert (a.allow, a.require, a.grant, a.approval, a.max_depth) == (
        b.allow,
        b.require,
        b.grant,
        b.approval,
        b.max_depth,
    )
    for i in range(len(trail)):
        looser, tighter = merge(trail[:i]), merge(trail[: i + 1])
        assert tighter.allow <= looser.allow
        assert tighter.approval >= looser.approval
        assert tighter.max_depth <= looser.max_depth
        assert tighter.require >= looser.require
        if looser.grant is not None:
            assert tighter.grant is not None
            assert tighter.grant <= looser.grant


def test_resources_and_prompts_have_their_own_rules() -> None:
    pol = policy(
        {
            "agents": {
                "crm": {
                    "tools": {"note://x": {"allow": False}},
                    "resources": {"note://x": {"require": ["notes:read"]}, "*": {"grant": []}},
                    "prompts": {"greet": {"allow": False}},
                }
            }
        }
    )
    read = decide(pol, "read", target(), action="note://x", kind="resource")
    assert_denied(read, Denial.MISSING_SCOPE)
    assert read.rules == (
        "defaults",
        "agents.crm",
        "agents.crm.resources.*",
        "agents.crm.resources.note://x",
    )
    assert decide(pol, "read notes:read", target(), action="note://x", kind="resource").allowed
    # A tool rule never decides a resource, nor a resource rule a prompt.
    assert decide(pol, "read", target(), action="note://x", kind="tool").allowed is False
    assert_denied(decide(pol, "read", target(), action="greet", kind="prompt"), Denial.POLICY)
    assert decide(pol, "read", target(), action="note://x", kind="prompt").allowed


@pytest.mark.parametrize(
    ("document", "holds"),
    [
        ({}, False),
        ({"agents": {"a": {"grant": ["x"]}}}, False),
        ({"agents": {"a": {"approval": False}}}, False),
        ({"defaults": {"approval": True}}, True),
        ({"agents": {"a": {"approval": True}}}, True),
        ({"agents": {"*": {"skills": {"refund": {"approval": True}}}}}, True),
        ({"agents": {"inv": {"tools": {"adjust": {"approval": True}}}}}, True),
    ],
)
def test_can_hold_says_whether_any_rule_asks_for_an_approval(
    document: dict[str, Any], holds: bool
) -> None:
    # The A2A handlers look a task up among the held ones only when it is true:
    # a rule it missed would send a held task's GetTask to the agent.
    assert Policy.model_validate(document).can_hold is holds
