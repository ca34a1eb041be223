"""`gateway.delegation.whatif`: which audit rows are decisions replayed,
which are not replayable (and why), which are no decision at all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.delegation.whatif import _decide_one
from policies.policy import Target
from policies.rules import Policy
from policies.whatif import APPROVED_CALL, BUDGET, GONE, NOT_DECIDED, RATE_LIMITED, Tally

FACTS = {"scopes": ["crm:read"], "kind": "skill", "approval": False}
TARGETS: dict[str, Target | None] = {"sales": Target("sales"), "gone": None}


def row(n: int, **changes: Any) -> dict[str, Any]:
    base = {
        "id": n,
        "at": datetime(2026, 11, 27, tzinfo=UTC),
        "trace_id": f"{n:032x}",
        "subject": "alice",
        "client_id": "app",
        "actors": ["app"],
        "target": "sales",
        "action": None,
        "scopes_requested": None,
        "scopes_granted": "",
        "decision": "allow",
        "outcome": "ok",
        "decided_on": FACTS,
    }
    return base | changes


def test_each_row_is_replayed_named_or_skipped() -> None:
    held = {**FACTS, "approval": True}
    rows = [
        row(1),  # replayed: allow, no scopes either way
        row(2, decided_on=None),  # an outage, a flow's event, an old record
        row(3, decided_on=held),  # the call made once approved
        row(4, decided_on=held, outcome="approval_required"),  # a hold, recorded as a permit's
        row(5, decision="deny", outcome="rate_limited"),
        row(6, outcome="budget_spent"),
        row(7, target="gone"),
        row(8, target="gone", outcome="rate_limited"),  # the first reason wins
    ]
    tally = Tally()
    for each in rows:
        _decide_one(Policy(), each, TARGETS, 4, tally, True)
    assert [e["id"] for e in tally.each] == [1, 4]
    assert tally.each[1]["before"] == {"decision": "hold", "scopes": []}
    assert tally.each[1]["after"] == {"decision": "allow", "scopes": []}
    assert {k: [e["id"] for e in g.examples] for k, g in tally.skipped.items()} == {
        NOT_DECIDED: [2],
        APPROVED_CALL: [3],
    }
    assert {k: [e["id"] for e in g.examples] for k, g in tally.unreplayable.items()} == {
        RATE_LIMITED: [5, 8],
        BUDGET: [6],
        GONE: [7],
    }
    assert (tally.decisions, tally.replayed, tally.changed) == (6, 2, 1)
