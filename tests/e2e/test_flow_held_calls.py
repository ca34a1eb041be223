"""A target the policy holds for a human (``approval: true``) becomes a
checkpoint of the run by itself (`gateway.flows.reviews.called`), on both
databases: nothing is sent until an admin approves on the desk; approved,
the call is made once, as approved; rejected, the run ends rejected and the
agent never hears of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.flows import POLICY, FlowSetup, flow_setup

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
HELD = (
    POLICY.replace(
        "  sales:\n    require: [sales:quote]\n    grant: [sales:quote]\n",
        "  sales:\n    require: [sales:quote]\n    grant: [sales:quote]\n"
        "    skills:\n      quote: {approval: true}\n",
    )
    + "  held-flow:\n    grant: [sales:quote]\n"
)


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    assert "quote: {approval: true}" in HELD
    with flow_setup(tmp_path, database_url, HELD) as made:
        assert made.register(HELD_FLOW).status_code == 201
        yield made


def _held(setup: FlowSetup) -> tuple[dict[str, Any], str]:
    with setup.user() as dana:
        started = dana.post("/flows/held-flow/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        run = setup.run(dana, started.json(), "input_required", "failed", "completed")
    assert run["state"] == "input_required", run
    asking = next(s for s in run["steps"] if s["id"] == "quote_approval1")
    assert asking["kind"] == "checkpoint" and asking["state"] == "waiting"
    assert "sales needs a human's approval" in asking["input"]["prompt"]
    return run, str(asking["approval_id"])


def test_a_held_call_waits_for_the_desk_then_goes_once(setup: FlowSetup) -> None:
    run, approval = _held(setup)
    assert setup.desk.count("quote") == 0
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
    assert setup.desk.count("quote") == 1


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
    assert setup.desk.count("quote") == 0
