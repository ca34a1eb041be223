"""A target the policy holds for a human (``approval: true``) becomes a
checkpoint of the run by itself (`gateway.flows.reviews.called`), on both
databases: nothing is sent until an admin approves on the desk; approved,
the call is made once, as approved; rejected, the run ends rejected and the
agent never hears of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.flows import POLICY, FlowSetup, flow_setup, messages_of

HELD_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "held-flow",
    "name": "A quote a human lets go",
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'X-100', quantity: `3`}",
        }
    ],
}
# The held call as a parallel branch beside one that is not held.
HELD_BRANCH: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "held-branch",
    "name": "A quote a human lets go, beside a status",
    "steps": [
        {
            "id": "both",
            "parallel": {
                "branches": [
                    {
                        "id": "ready",
                        "call": {"agent": "sales", "skill": "status"},
                        "input": "{order: 'H-1'}",
                    },
                    {**HELD_FLOW["steps"][0]},
                ]
            },
        }
    ],
}
HELD = (
    POLICY.replace(
        "  sales:\n    require: [sales:quote]\n    grant: [sales:quote]\n",
        "  sales:\n    require: [sales:quote]\n    grant: [sales:quote]\n"
        "    skills:\n      quote: {approval: true}\n",
    )
    + "  held-flow:\n    grant: [sales:quote]\n"
    + "  held-branch:\n    grant: [sales:quote]\n"
)
# The held tool too (no other test calls the inventory): one gateway holds both.
HELD = HELD.replace(
    "  inventory:\n    require: [inventory:read]\n    grant: [inventory:read]\n",
    "  inventory:\n    require: [inventory:read]\n    grant: [inventory:read]\n"
    "    tools:\n      check_stock: {approval: true}\n",
) + ("  stock-flow:\n    grant: [inventory:read]\n")


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, held-flow registered once:
    each reads the desk's messages of its own runs (`messages_of`)."""
    assert "quote: {approval: true}" in HELD
    tmp_path = tmp_path_factory.mktemp("held-calls")
    with flow_setup(tmp_path, module_database_url, HELD) as made:
        assert made.register(HELD_FLOW).status_code == 201
        yield made


def _held(setup: FlowSetup) -> tuple[dict[str, Any], str]:
    with setup.user() as dana:
        started = dana.post("/flows/held-flow/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        run = setup.run(dana, started.json(), "input_required", "failed", "completed")
    assert run["state"] == "input_required", run
    asking = next(s for s in run["steps"] if s["id"].startswith("quote:approval1."))
    assert asking["kind"] == "checkpoint" and asking["state"] == "waiting"
    assert "sales needs a human's approval" in asking["input"]["prompt"]
    # The desk sees what the call would send.
    assert asking["input"]["show"] == {"sku": "X-100", "quantity": 3}
    return run, str(asking["approval_id"])


def test_a_held_call_waits_for_the_desk_then_goes_once(setup: FlowSetup) -> None:
    run, approval = _held(setup)
    assert messages_of(setup.desk.sent("quote"), run) == []
    with setup.user() as dana:
        # The run's user is not the desk.
        refused = dana.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert refused.status_code == 403, refused.text
    with setup.admin() as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
    with setup.user() as dana:
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    assert done["output"]["total"] > 0
    assert len(messages_of(setup.desk.sent("quote"), run)) == 1


def test_a_rejected_call_ends_the_run_and_sends_nothing(setup: FlowSetup) -> None:
    run, approval = _held(setup)
    with setup.admin() as admin:
        decided = admin.post(
            f"/approvals/{approval}", json={"decision": "reject", "reason": "not today"}
        )
        assert decided.status_code == 200, decided.text
    with setup.user() as dana:
        done = setup.run(dana, run, "rejected", "failed", "completed")
    assert done["state"] == "rejected", done
    assert "not today" in (done["error"] or "")
    assert messages_of(setup.desk.sent("quote"), run) == []


def test_a_held_branch_waits_its_turn_then_goes_once_or_ends_the_run(setup: FlowSetup) -> None:
    """Once the other branch is done, the held one becomes the run's
    checkpoint; approved, it is sent once; rejected, the run ends rejected."""
    assert setup.register(HELD_BRANCH).status_code == 201
    runs = []
    with setup.user() as dana:
        for _ in range(2):
            started = dana.post("/flows/held-branch/runs", json={"input": {}})
            assert started.status_code == 202, started.text
            run = setup.run(dana, started.json(), "input_required", "failed", "completed")
            assert run["state"] == "input_required", run
            steps = {s["id"]: s for s in run["steps"]}
            assert steps["ready"]["state"] == "completed"
            (held,) = [s for s in run["steps"] if s["id"].startswith("quote:approval1.")]
            assert held["state"] == "waiting" and held["input"]["show"]["sku"] == "X-100"
            runs.append((run, str(held["approval_id"])))
    assert messages_of(setup.desk.sent("quote"), *(r for r, _ in runs)) == []
    (approved, first), (rejected, second) = runs
    with setup.admin() as admin:
        assert admin.post(f"/approvals/{first}", json={"decision": "approve"}).status_code == 200
        said = {"decision": "reject", "reason": "not this one"}
        assert admin.post(f"/approvals/{second}", json=said).status_code == 200
    with setup.user() as dana:
        done = setup.run(dana, approved, "completed", "failed")
        ended = setup.run(dana, rejected, "rejected", "failed", "completed")
    assert done["state"] == "completed", done
    assert set(done["output"]) == {"ready", "quote"} and done["output"]["quote"]["total"] > 0
    assert ended["state"] == "rejected", ended
    assert "not this one" in (ended["error"] or "")
    assert len(messages_of(setup.desk.sent("quote"), approved, rejected)) == 1


def test_a_held_mcp_tool_is_called_once_approved(setup: FlowSetup) -> None:
    """A tool the policy holds: nothing reaches it until approved; approved,
    the call is made (a tool's record said "sent" before the decision, and
    that is not taken for a call a crash interrupted)."""
    assert "check_stock: {approval: true}" in HELD
    document = {
        "format": "switchboard.flow/v1",
        "id": "stock-flow",
        "name": "Stock, once a human agrees",
        "steps": [
            {
                "id": "stock",
                "call": {"tool": "inventory__check_stock"},
                "input": "{sku: 'X-100', quantity: `5`}",
            }
        ],
    }
    # The module's gateway, whose policy holds the tool: one of its own would
    # have no flow engine while the module's runs (DBOS is one per process).
    assert setup.register(document).status_code == 201
    with setup.user() as dana:
        started = dana.post("/flows/stock-flow/runs", json={"input": {}}).json()
        run = setup.run(dana, started, "input_required", "failed", "completed")
    assert run["state"] == "input_required", run
    asking = next(s for s in run["steps"] if s["id"].startswith("stock:approval1."))
    with setup.admin() as admin:
        decided = admin.post(f"/approvals/{asking['approval_id']}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        with setup.user() as dana:
            done = setup.run(dana, run, "completed", "failed")
        assert done["state"] == "completed", done
        assert done["output"]["on_hand"] == 1240
        interrupted = [
            r
            for r in admin.get("/audit", params={"limit": 500}).json()["items"]
            if r["outcome"] == "interrupted"
        ]
    assert interrupted == []
