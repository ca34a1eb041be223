"""`DELETE /flows/{id}` (SQLite and PostgreSQL): refused while a run has not
ended, unless `?cancel=true`; then the flow, its agent, its versions and its
runs' records are gone, its waiting checkpoint withdrawn, nothing more sent,
and the deletion audited. Only an admin may; the flow's agent cannot be
deleted as an agent (its document and runs would be left behind)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.flows import POLICY, FlowSetup, flow_setup

HELD: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "held-flow",
    "name": "Asks a human, then replies",
    "input": {"type": "object"},
    "steps": [
        {"id": "ask", "checkpoint": {"prompt": "Go on?", "timeout_seconds": 600}},
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'ACME', total: `1`}",
        },
    ],
}
QUICK: dict[str, Any] = {**HELD, "id": "quick-flow", "steps": HELD["steps"][1:]}


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY + "  held-flow:\n    grant: [sales:quote]\n"
    policy += "  quick-flow:\n    grant: [sales:quote]\n"
    with flow_setup(tmp_path, database_url, policy) as made:
        yield made


def _problem(answer: httpx.Response) -> str:
    return str(answer.json()["type"]).rpartition(":")[2]


def _start(setup: FlowSetup, flow_id: str, *states: str) -> dict[str, Any]:
    with setup.user() as dana:
        started = dana.post(f"/flows/{flow_id}/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        return setup.run(dana, started.json(), *states)


def test_a_flow_with_a_waiting_run_is_deleted_only_when_asked_to_cancel_it(
    setup: FlowSetup,
) -> None:
    assert setup.register(HELD).status_code == 201
    run = _start(setup, "held-flow", "input_required")
    approval_id = {s["id"]: s for s in run["steps"]}["ask"]["approval_id"]
    with setup.user() as dana:
        refused = dana.delete("/flows/held-flow", params={"cancel": "true"})
        assert refused.status_code == 403  # admins only
    with setup.admin() as admin:
        assert _problem(admin.delete("/flows/nowhere")) == "flow-not-found"
        kept = admin.delete("/flows/held-flow")
        assert kept.status_code == 409 and _problem(kept) == "flow-has-active-runs"
        assert run["id"] in kept.json()["detail"]
        # Nothing was deleted: the flow, its agent and the waiting run are all there.
        assert admin.get("/flows/held-flow").status_code == 200
        assert admin.get("/agents/held-flow").status_code == 200
        waiting = admin.get(f"/flows/held-flow/runs/{run['id']}").json()
        assert waiting["state"] == "input_required"

        deleted = admin.delete("/flows/held-flow", params={"cancel": "true"})
        assert deleted.status_code == 204, deleted.text
        assert _problem(admin.get("/flows/held-flow")) == "flow-not-found"
        assert admin.get(f"/flows/held-flow/runs/{run['id']}").status_code == 404
        assert admin.get("/agents/held-flow").status_code == 404
        assert (
            httpx.get(setup.gateway.url + "/a2a/held-flow/.well-known/agent-card.json").status_code
            == 404
        )
        assert admin.get(f"/approvals/{approval_id}").json()["state"] == "withdrawn"
        # Approving the withdrawn checkpoint now sends nothing.
        admin.post(f"/approvals/{approval_id}", json={"decision": "approve"})
        records = admin.get("/audit", params={"agent": "held-flow", "limit": 1000}).json()
        audit = [r for r in records["items"] if r["event"] == "flow.deleted"]
    assert setup.desk.count("reply") == 0
    [record] = audit
    assert record["target"] == "held-flow" and record["subject"] == "admin"
    assert "active runs cancelled" in record["detail"]


def test_an_ended_flow_goes_with_its_runs_and_its_id_can_be_used_again(
    setup: FlowSetup,
) -> None:
    assert setup.register(QUICK).status_code == 201
    run = _start(setup, "quick-flow", "completed")
    with setup.admin() as admin:
        assert admin.delete("/flows/quick-flow").status_code == 204
        assert admin.get(f"/flows/quick-flow/runs/{run['id']}").status_code == 404
        assert admin.get("/flows/quick-flow/versions").status_code == 404
    again = setup.register(QUICK)
    assert again.status_code == 201, again.text
    assert again.json()["flow"]["version"] == 1
    assert _start(setup, "quick-flow", "completed")["state"] == "completed"


def test_a_flows_agent_is_not_deleted_as_an_agent(setup: FlowSetup) -> None:
    assert setup.register(QUICK).status_code == 201
    with setup.admin() as admin:
        refused = admin.delete("/agents/quick-flow")
        assert refused.status_code == 409 and _problem(refused) == "agent-is-a-flow"
        assert admin.get("/flows/quick-flow").status_code == 200
        assert admin.get("/agents/quick-flow").status_code == 200
