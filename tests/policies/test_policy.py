"""The delegation policy model and the one pure decision, `authorize()`.

`authorize()` is what the token endpoint, the pipeline, agent listings and
`POST /policies/explain` all call, so these tests pin down its contract
directly: every denial and the order the checks run in, the scopes that pass
on (user ∩ card needs ∩ policy grant, with only `require` passing when neither
side declares anything), how nested rules merge (a more specific rule only
tightens), and what `Target.from_card` makes of malformed cards. Property tests
(hypothesis) check the invariants over random policies, cards and chains.

Known bugs are pinned with strict xfails whose reason starts with "BUG:".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies.policy import (
    DEFAULT_MAX_DEPTH,
    HARD_MAX_DEPTH,
    ActionKind,
    AgentRule,
    Decision,
    DelegationQuery,
    Denial,
    EffectiveRule,
    Policy,
    Rule,
    Target,
    authorize,
    may_use,
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


@pytest.mark.xfail(
    strict=True,
    reason=(
        "BUG: the POLICY denial reason names rule.sources[-1] (the most specific rule in "
        "the trail), not the rule that said allow: false"
    ),
)
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
    assert merged.grant == {"y", "z"}
    # A more specific grant cannot add scopes the broader one left out.
    assert merge([("a", Rule(grant=["x"])), ("b", Rule(grant=["x", "y"]))]).grant == {"x"}
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
    assert merged.grant == {"x"}


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
    assert merged.grant == {"b"}
    assert merged.max_depth == 3
    assert merged.approval is True
    assert merged.allow is True
    # Another agent gets only the "*" rules.
    other = merge(policy_trail(pol, "billing", "lookup"), max_depth=10)
    assert other.require == {"r1", "r2"}
    assert other.grant == {"a", "b", "c"}
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


@pytest.mark.xfail(
    strict=True,
    reason=(
        "BUG: Rule accepts scope strings that are not one scope-token: the empty string and "
        "strings with tabs/newlines pass (parse_scopes splits on any whitespace, the extra "
        "check only looks for ' ')"
    ),
)
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
    assert tgt.skills == {"lookup", "delete", "open"}


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
    tgt = Target.from_card("crm", card([entry, requirement(oauth=["admin"])]))
    assert tgt.requirements == (expected, scopes("admin"))


@pytest.mark.xfail(
    strict=True, raises=(AttributeError, TypeError), reason="BUG: from_card crashes on these shapes"
)
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


@pytest.mark.xfail(
    strict=True, raises=TypeError, reason="BUG: from_card iterates a non-list `skills` value"
)
@pytest.mark.parametrize("skills", [5, True, 1.5])
def test_from_card_non_iterable_skills_do_not_crash(skills: Any) -> None:
    Target.from_card("crm", {"skills": skills})


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a string `list` is iterated character by character into one-letter scopes",
)
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
    assert tgt.skills == {"ok", "None"}


@pytest.mark.parametrize("skills", [{"lookup": {}}, "lookup", None, []])
def test_from_card_skills_of_other_shapes_do_not_crash(skills: Any) -> None:
    tgt = Target.from_card("crm", {"skills": skills})
    assert tgt.skills == frozenset()


@pytest.mark.xfail(
    strict=True,
    reason=(
        "BUG: a truthy non-list skill `securityRequirements` (e.g. one requirement not "
        "wrapped in a list) is stored as () and so REPLACES the card's requirements with "
        "none, instead of being ignored like the same shape at card level"
    ),
)
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

AGENT_IDS = ("A", "B", "C")
CHAIN_IDS = ("A", "B", "C", "D", "E")
SKILL_IDS = ("s1", "s2", "s3")
# A few names that may appear as actions but are not on any card.
ACTIONS = (*SKILL_IDS, "t1")
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def alphabets(draw: st.DrawFn) -> list[str]:
    """A small random set of scope names, so random subsets overlap often."""
    token = st.text(alphabet="abcxyz:._", min_size=1, max_size=4)
    return draw(st.lists(token, min_size=1, max_size=5, unique=True))


def subsets(alphabet: Sequence[str]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(alphabet), max_size=len(alphabet))


def rules(alphabet: Sequence[str]) -> st.SearchStrategy[Rule]:
    scope_list = st.none() | st.lists(
        st.sampled_from(alphabet), max_size=len(alphabet), unique=True
    )
    return st.builds(
        Rule,
        # A denial is rare, so most examples get past step 2.
        allow=st.sampled_from([None, None, None, True, False]),
        require=st.none() | st.none() | scope_list,
        grant=scope_list,
        approval=st.none() | st.booleans(),
        max_depth=st.none() | st.integers(1, 6),
    )


def action_rules(alphabet: Sequence[str]) -> st.SearchStrategy[dict[str, Rule]]:
    return st.dictionaries(st.sampled_from(("*", *ACTIONS)), rules(alphabet), max_size=3)


@st.composite
def policies(draw: st.DrawFn, alphabet: Sequence[str]) -> Policy:
    agents = {}
    for key in draw(st.lists(st.sampled_from(("*", *AGENT_IDS)), max_size=3, unique=True)):
        base = draw(rules(alphabet))
        agents[key] = AgentRule(
            **base.model_dump(),
            skills=draw(action_rules(alphabet)),
            tools=draw(action_rules(alphabet)),
        )
    return Policy(defaults=draw(rules(alphabet)), agents=agents)


@st.composite
def targets(draw: st.DrawFn, alphabet: Sequence[str]) -> Target:
    alts = st.lists(subsets(alphabet), max_size=3).map(tuple)
    skills = draw(st.none() | st.frozensets(st.sampled_from(SKILL_IDS)))
    return Target(
        agent_id=draw(st.sampled_from(AGENT_IDS)),
        requirements=draw(alts),
        skill_requirements=draw(st.dictionaries(st.sampled_from(SKILL_IDS), alts, max_size=3)),
        skills=skills,
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Policy, DelegationQuery, int]:
    """A random policy, target and query over one small scope alphabet, and a depth cap."""
    alphabet = draw(alphabets())
    pol = draw(policies(alphabet))
    query = DelegationQuery(
        user_scopes=draw(subsets(alphabet)),
        chain=tuple(draw(st.lists(st.sampled_from(CHAIN_IDS), max_size=5, unique=True))),
        target=draw(targets(alphabet)),
        action=draw(st.none() | st.sampled_from(ACTIONS)),
        kind=draw(st.sampled_from(["skill", "tool"])),
        # Sometimes beyond the user's scopes, to hit SCOPE_EXCEEDS_SUBJECT.
        requested_scopes=draw(st.none() | subsets(alphabet)),
    )
    return pol, query, draw(st.integers(1, 8))


def effective(pol: Policy, query: DelegationQuery, max_depth: int) -> EffectiveRule:
    return merge(pol.rule_trail(query.target.agent_id, query.kind, query.action), max_depth)


@PROPERTY_SETTINGS
@given(worlds())
def test_property_granted_within_user_and_request(
    world: tuple[Policy, DelegationQuery, int],
) -> None:
    """(a) never more than the user holds; (b) never more than was requested."""
    pol, query, max_depth = world
    decision = authorize(pol, query, max_depth=max_depth)
    assert decision.granted <= query.user_scopes
    if query.requested_scopes is not None:
        assert decision.granted <= query.requested_scopes


@PROPERTY_SETTINGS
@given(worlds())
def test_property_granted_within_policy_grant(world: tuple[Policy, DelegationQuery, int]) -> None:
    """(c) the policy's grant is a cap; with no grant, the card's needs or `require` cap it."""
    pol, query, max_depth = world
    decision = authorize(pol, query, max_depth=max_depth)
    rule = effective(pol, query, max_depth)
    if rule.grant is not None:
        assert decision.granted <= rule.grant
    declared = frozenset().union(*_declared_alternatives(query))
    if rule.grant is None and not declared:
        # Neither side declares: only `require` passes on.
        assert decision.granted <= rule.require
    if declared:
        # Some alternative declares scopes: nothing the card never mentions passes on.
        assert decision.granted <= declared or (
            rule.grant is not None
            and not any(alt <= query.user_scopes and alt for alt in _declared_alternatives(query))
        )


def _declared_alternatives(query: DelegationQuery) -> tuple[frozenset[str], ...]:
    """The alternatives that apply to the query, restated independently of the code."""
    tgt = query.target
    if (
        query.kind == "skill"
        and query.action is not None
        and query.action in tgt.skill_requirements
    ):
        return tgt.skill_requirements[query.action]
    return tgt.requirements


@PROPERTY_SETTINGS
@given(worlds())
def test_property_decision_shape(world: tuple[Policy, DelegationQuery, int]) -> None:
    """(d) a denial grants nothing and needs no approval; every decision says why
    and names the rules it used; depth is the chain length plus one."""
    pol, query, max_depth = world
    decision = authorize(pol, query, max_depth=max_depth)
    rule = effective(pol, query, max_depth)
    assert decision.allowed == (decision.denial is None)
    if not decision.allowed:
        assert decision.granted == frozenset()
        assert decision.approval_required is False
        assert len(decision.reasons) == 1
    else:
        assert decision.approval_required == rule.approval
        assert query.target.agent_id not in query.chain
        assert decision.depth <= min(max_depth, rule.max_depth)
        assert rule.allow and rule.require <= query.user_scopes
    assert decision.reasons and all(decision.reasons)
    assert decision.depth == len(query.chain) + 1
    assert decision.rules == rule.sources
    assert decision.rules[0] == "defaults"


@PROPERTY_SETTINGS
@given(worlds())
def test_property_denial_order(world: tuple[Policy, DelegationQuery, int]) -> None:
    """The denial is the first failing check, in the documented order."""
    pol, query, max_depth = world
    decision = authorize(pol, query, max_depth=max_depth)
    rule = effective(pol, query, max_depth)
    tgt = query.target
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
            bool(_declared_alternatives(query))
            and not any(alt <= query.user_scopes for alt in _declared_alternatives(query)),
        ),
    ]
    expected = next((denial for denial, failed in checks if failed), None)
    assert decision.denial == expected


@PROPERTY_SETTINGS
@given(worlds())
def test_property_deterministic(world: tuple[Policy, DelegationQuery, int]) -> None:
    """(e) pure: the same inputs, and an equal copy of them, give the same decision."""
    pol, query, max_depth = world
    first = authorize(pol, query, max_depth=max_depth)
    assert authorize(pol, query, max_depth=max_depth) == first
    copy = Policy.model_validate(pol.model_dump())
    assert authorize(copy, query, max_depth=max_depth) == first


@st.composite
def chains(draw: st.DrawFn) -> tuple[Policy, list[Target], frozenset[str], int]:
    alphabet = draw(alphabets())
    hops = draw(st.lists(targets(alphabet), min_size=1, max_size=6))
    return draw(policies(alphabet)), hops, draw(subsets(alphabet)), draw(st.integers(1, 8))


@PROPERTY_SETTINGS
@given(chains())
def test_property_scopes_never_grow_along_a_chain(
    world: tuple[Policy, list[Target], frozenset[str], int],
) -> None:
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
@given(worlds())
def test_property_may_use_iff_agent_or_some_skill_allowed(
    world: tuple[Policy, DelegationQuery, int],
) -> None:
    """(g) listings agree with calls."""
    pol, query, max_depth = world
    tgt = query.target
    actions: list[str | None] = [None, *(tgt.skills or ())]
    expected = any(
        authorize(
            pol, DelegationQuery(query.user_scopes, query.chain, tgt, action), max_depth=max_depth
        ).allowed
        for action in actions
    )
    assert may_use(pol, query.user_scopes, tgt, max_depth=max_depth, chain=query.chain) == expected


@PROPERTY_SETTINGS
@given(worlds(), st.data())
def test_property_a_more_specific_rule_never_allows_more(
    world: tuple[Policy, DelegationQuery, int], data: st.DataObject
) -> None:
    """Adding a rule at the target's own agent or action level can turn an allow
    into a deny, never a deny into an allow, and never drops an approval."""
    pol, query, max_depth = world
    agent_id = query.target.agent_id
    extra = data.draw(rules(sorted(query.user_scopes | {"z"})))
    agents = dict(pol.agents)
    current = agents.get(agent_id, AgentRule())
    if query.action is None:
        combined = Rule.model_validate(
            _tighten(current, extra).model_dump()
        )  # agent-level fields only
        agents[agent_id] = AgentRule(
            **combined.model_dump(), skills=current.skills, tools=current.tools
        )
    else:
        field = "skills" if query.kind == "skill" else "tools"
        actions = dict(getattr(current, field))
        actions[query.action] = _tighten(actions.get(query.action, Rule()), extra)
        agents[agent_id] = current.model_copy(update={field: actions})
    tighter = Policy(defaults=pol.defaults, agents=agents)
    before = authorize(pol, query, max_depth=max_depth)
    after = authorize(tighter, query, max_depth=max_depth)
    if after.allowed:
        assert before.allowed
        assert after.approval_required >= before.approval_required


def _tighten(rule: Rule, extra: Rule) -> Rule:
    """`rule` with `extra` merged in the policy's own way (so nothing loosens)."""
    merged = merge([("a", rule), ("b", extra)], max_depth=HARD_MAX_DEPTH)
    return Rule(
        allow=merged.allow,
        require=sorted(merged.require) if (rule.require or extra.require) is not None else None,
        grant=sorted(merged.grant) if merged.grant is not None else None,
        approval=merged.approval,
        max_depth=rule.max_depth if extra.max_depth is None else merged.max_depth,
    )


@PROPERTY_SETTINGS
@given(
    alphabets().flatmap(lambda a: st.lists(st.tuples(st.just("r"), rules(a)), max_size=6)),
    st.randoms(),
)
def test_property_merge_is_order_independent_and_tightening(
    trail: list[tuple[str, Rule]], rnd: Any
) -> None:
    """merge() is a meet: the order of the rules does not change the effective
    rule (only the sources), and each added rule tightens every field."""
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
            assert tighter.grant is not None and tighter.grant <= looser.grant
