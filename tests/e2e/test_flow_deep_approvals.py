"""Approvals from deep inside (`gateway.flows.deep_approvals`), end to end on
both databases: a flow whose step is another flow that stops at its
manager's checkpoint -- the approval appears on the outer run (its step's
record, its A2A task with the chain that raised it), nobody is asked a
question, and approving it on the desk resumes the inner run and then the
outer one; rejected, both end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.flow_agents import SalesDesk, inventory_app, sales_desk_app
from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE
from tests.support.flows import POLICY, QUOTE_FLOW, FlowSetup, flow_setup, run_task
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

OUTER: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "outer-flow",
    "name": "Quote through the quote flow, then thank",
    "input": {
        "type": "object",
        "properties": {"quantity": {"type": "integer"}},
        "required": ["quantity"],
    },
    "steps": [
        {
            "id": "inner",
            "call": {"flow": "quote-flow"},
            "input": "{sku: 'X-100', quantity: input.quantity, customer: 'ACME'}",
        },
        {
            "id": "thanks",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'ACME', total: steps.inner.output.quote.total}",
        },
    ],
    "output": "{quote: steps.inner.output.quote, thanks: steps.thanks.text}",
}


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY + "  outer-flow:\n    grant: [sales:quote, inventory:read]\n"
    with flow_setup(tmp_path, database_url, policy) as made:
        assert made.register(QUOTE_FLOW).status_code == 201
        assert made.register(OUTER).status_code == 201
        yield made


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_an_inner_checkpoint_shows_on_the_outer_run_and_is_decided_there(
    setup: FlowSetup, decision: str
) -> None:
    with setup.user() as dana, setup.admin() as admin:
        started = dana.post("/flows/outer-flow/runs", json={"input": {"quantity": 100}})
        assert started.status_code == 202, started.text
        outer = setup.run(dana, started.json(), "input_required", "failed", "completed")
        assert outer["state"] == "input_required", outer
        step = next(s for s in outer["steps"] if s["id"] == "inner")
        assert step["state"] == "waiting" and outer["current_step"] == "inner"
        inner_run = step["upstream_task_id"]
        inner = dana.get(f"/flows/quote-flow/runs/{inner_run}").json()
        manager = next(s for s in inner["steps"] if s["id"] == "manager")
        # The same approval, on the outer step's record ...
        assert step["approval_id"] == manager["approval_id"]
        # ... and on the outer run's task, with the chain that raised it.
        task = run_task(dana, "outer-flow", outer["id"])
        assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        assert task["metadata"]["approval"] == manager["approval_id"]
        assert task["metadata"]["chain"] == [
            f"outer-flow run {outer['id']} step inner",
            f"quote-flow run {inner_run} step manager",
        ]
        assert "question" not in task["metadata"]
        # Nobody's question: the run's user cannot answer it.
        refused = dana.post(
            f"/flows/outer-flow/runs/{outer['id']}/answer", json={"text": "yes please"}
        )
        assert refused.status_code == 409, refused.text
        decided = admin.post(f"/approvals/{manager['approval_id']}", json={"decision": decision})
        assert decided.status_code == 200, decided.text
        done = setup.run(dana, outer, "completed", "failed")
    if decision == "approve":
        assert done["state"] == "completed", done
        assert done["output"]["quote"]["discount"] == 0.2
        assert done["output"]["thanks"].startswith("Dear ACME")
        step = next(s for s in done["steps"] if s["id"] == "inner")
        assert step["state"] == "completed"
    else:
        assert done["state"] == "failed", done
        assert "REJECTED" in done["error"]
        assert setup.desk.count("reply") == 0
    # The desk saw each call once: the quote, and the inner run's reply if approved.
    assert setup.desk.count("quote") == 1


def test_the_time_the_desk_takes_does_not_count_against_the_steps_timeout(
    setup: FlowSetup,
) -> None:
    """The outer step may take 3 s; the manager decides later than that. The
    clock stands still while the approval waits, so the call goes on."""
    hurried = {**OUTER, "id": "outer-flow", "steps": [dict(OUTER["steps"][0]), OUTER["steps"][1]]}
    hurried["steps"][0]["timeout_seconds"] = 3
    assert setup.register(hurried).status_code == 201
    with setup.user() as dana, setup.admin() as admin:
        started = dana.post("/flows/outer-flow/runs", json={"input": {"quantity": 100}})
        assert started.status_code == 202, started.text
        outer = setup.run(dana, started.json(), "input_required", "failed", "completed")
        assert outer["state"] == "input_required", outer
        step = next(s for s in outer["steps"] if s["id"] == "inner")
        # Decided only once the step's own 3 s are long past.
        began = datetime.fromisoformat(step["started_at"])
        while datetime.now(UTC) < began + timedelta(seconds=4.5):
            time.sleep(0.1)
        still = dana.get(f"/flows/outer-flow/runs/{outer['id']}").json()
        assert still["state"] == "input_required", still
        decided = admin.post(f"/approvals/{step['approval_id']}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        done = setup.run(dana, outer, "completed", "failed")
    assert done["state"] == "completed", done
    assert setup.desk.count("quote") == 1


@pytest.mark.crash
def test_a_nested_approval_pending_across_a_sigkill(
    tmp_path: Path, database_url: str | None
) -> None:
    """The gateway killed while the outer run waits on the inner run's
    checkpoint: started again, both wait as before (nothing sent again) --
    the outer step's 3 s clock standing still from the re-attach on -- and
    approving the checkpoint ends both."""
    hurried = {**OUTER, "steps": [{**OUTER["steps"][0], "timeout_seconds": 3}, OUTER["steps"][1]]}
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    inventory = ServerThread(lambda _url: inventory_app()).start()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + "  outer-flow:\n    grant: [sales:quote, inventory:read]\n")
    gateway = GatewayProcess(tmp_path / "data", database_url=database_url, policy_file=policy)

    def outer_now(run_id: str) -> dict[str, Any]:
        with gateway.client("dana", "sales:quote inventory:read") as dana:
            body: dict[str, Any] = dana.get(f"/flows/outer-flow/runs/{run_id}").json()
            return body

    def until(run_id: str, *states: str) -> dict[str, Any]:
        return wait_for(
            lambda: body if (body := outer_now(run_id))["state"] in states else None,
            seconds=60,
            every=0.1,
            what=lambda: outer_now(run_id),
        )

    try:
        gateway.start()
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            card = sales.url + "/.well-known/agent-card.json"
            assert admin.post("/agents", json={"card_url": card, "id": "sales"}).status_code == 201
            server = {"name": "Inventory", "id": "inventory", "url": inventory.url + "/mcp"}
            assert admin.post("/mcp-servers", json=server).status_code == 201
            assert admin.post("/flows", json=QUOTE_FLOW).status_code == 201
            assert admin.post("/flows", json=hurried).status_code == 201
        with gateway.client("dana", "sales:quote inventory:read") as dana:
            started = dana.post("/flows/outer-flow/runs", json={"input": {"quantity": 100}})
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
        waiting = until(run_id, "input_required", "failed", "completed")
        assert waiting["state"] == "input_required", waiting
        approval = waiting["steps"][0]["approval_id"]
        gateway.kill()
        gateway.start()
        restarted = time.monotonic()
        again = until(run_id, "input_required", "failed", "completed")
        assert again["state"] == "input_required", again
        assert again["steps"][0]["approval_id"] == approval
        while time.monotonic() < restarted + 5:  # past the step's 3 s since it re-attached
            time.sleep(0.1)
        still = outer_now(run_id)
        assert still["state"] == "input_required", still
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
            assert decided.status_code == 200, decided.text
        done = until(run_id, "completed", "failed")
        assert done["state"] == "completed", done
    finally:
        gateway.stop()
        sales.stop()
        inventory.stop()
    assert [desk.count(skill) for skill in ("quote", "reply")] == [1, 2]
