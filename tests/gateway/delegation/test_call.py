"""`Call`, what every door hands the core's one entrance (`Delegations.admit`):
what a door must say, and a message's call as its decided skill makes it."""

from __future__ import annotations

import pytest

from gateway.delegation.call import Call, MessageSkill
from gateway.delegation.permits import Caller
from policies.policy import Target

ALICE = Caller("alice", "https://idp.example", frozenset({"read"}), ("cli",), "cli")


def test_a_resolved_target_names_the_tokens_audience() -> None:
    """An MCP server has no agent record to read the audience from: a door that
    resolved the target itself must say who the token is for."""
    with pytest.raises(ValueError, match="audience"):
        Call(ALICE, Target("files"), event="mcp.tools_call", trace_id="t")
    call = Call(ALICE, Target("files"), event="mcp.tools_call", trace_id="t", audience="https://f")
    assert call.audience == "https://f" and call.sends


def test_an_agents_id_needs_no_audience() -> None:
    call = Call(ALICE, "orders", event="a2a", trace_id="t")
    assert call.audience is None and not call.message and call.action is None


def test_a_message_is_called_for_the_skill_it_was_decided_for() -> None:
    decided = MessageSkill("refund", task_id="task-1", strictest=True)
    call = decided.call(ALICE, "orders", event="a2a", trace_id="t", inputs=[{"order": 7}])
    assert (call.action, call.message, call.strictest) == ("refund", True, True)
    assert call.inputs == [{"order": 7}] and not call.approved
    assert call.caller is ALICE and call.target == "orders"


def test_a_call_is_a_value() -> None:
    """Frozen: what a door read cannot change between the decision and the send."""
    call = Call(ALICE, "orders", event="a2a", trace_id="t")
    with pytest.raises(AttributeError):
        call.action = "refund"  # type: ignore[misc]
