"""Approvals from deep inside, through an agent that delegates onwards
(`gateway.flows.deep_approvals`), end to end on both databases: a flow's
step calls the relay (an official a2a-sdk agent of its own, not run by the
gateway), which exchanges its token at the gateway and calls the sales desk
through the gateway's front door; the policy holds that call for an admin.
The approval shows on the root run -- the step's record, the run's A2A task
with the chain that raised it -- and approving it there resumes the held
call, the relay's task and the run; rejected, the run fails. The step's
timeout stands still while the admin decides."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policies.scopes import ADMIN_SCOPE
from tests.support.flow_crash import crashable
from tests.support.flows import POLICY, FlowSetup, flow_setup, run_task
from tests.support.onward_agent import Onward, onward_app
from tests.support.servers import ServerThread, stop_all

FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "onward-flow",
    "name": "Quote through the relay",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "relayed",
            "call": {"agent": "relay"},
            "input": "{sku: 'A-1', quantity: `2`}",
            # Shorter than the admin takes: the clock stands still meanwhile.
            "timeout_seconds": 4,
        }
    ],
    "output": "steps.relayed.output",
}
# The sales desk needs an admin's approval for every call, whoever makes it.
ONWARD_POLICY = POLICY.replace(
    "  sales:\n    require: [sales:quote]\n",
    "  sales:\n    require: [sales:quote]\n    approval: true\n",
) + (
    "  relay:\n    require: [sales:quote]\n    grant: [sales:quote]\n"
    "  onward-flow:\n    grant: [sales:quote]\n"
)


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[tuple[FlowSetup, Onward]]:
    with flow_setup(tmp_path, database_url, ONWARD_POLICY) as made:
        onward = Onward(made.gateway.url, "relay", "sales", "quote")
        relay = ServerThread(lambda url: onward_app(url, onward)).start()
        try:
            with made.admin() as admin:
                card = relay.url + "/.well-known/agent-card.json"
                assert (
                    admin.post("/agents", json={"card_url": card, "id": "relay"}).status_code == 201
                )
                issued = admin.post("/agents/relay/credentials", json={"method": "client_secret"})
                assert issued.status_code == 201, issued.text
                onward.secret = issued.json()["client_secret"]
            assert made.register(FLOW).status_code == 201, made.register(FLOW).text
            yield made, onward
        finally:
            stop_all(relay)


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_call_held_onwards_shows_on_the_run_and_is_decided_there(
    setup: tuple[FlowSetup, Onward], decision: str
) -> None:
    flows, onward = setup
    with flows.user() as dana, flows.user("erin") as erin, flows.admin() as admin:
        began = time.monotonic()
        started = dana.post("/flows/onward-flow/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        run = flows.run(dana, started.json(), "input_required", "failed", "completed")
        assert run["state"] == "input_required", run
        step = next(s for s in run["steps"] if s["id"] == "relayed")
        assert step["state"] == "waiting" and run["current_step"] == "relayed", step
        approval_id = step["approval_id"]
        held = admin.get(f"/approvals/{approval_id}").json()
        # The desk's own record of the relay's call: the user's, through the
        # flow and the relay, made under the run's step.
        assert held["target"] == "sales" and held["state"] == "pending", held
        assert held["requested_by"]["subject"] == "dana"
        assert held["requested_by"]["actors"][-2:] == ["onward-flow", "relay"], held
        assert held["requested_by"]["txn"] == f"{run['id']}:relayed"
        # On the run's task, with the chain that raised it.
        task = run_task(dana, "onward-flow", run["id"])
        assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        assert task["metadata"]["approval"] == approval_id
        assert task["metadata"]["chain"] == [
            f"onward-flow run {run['id']} step relayed",
            "relay -> sales / quote",
        ]
        # Nobody else sees the run; nothing reached the desk yet.
        assert erin.get(f"/flows/onward-flow/runs/{run['id']}").status_code == 404
        assert flows.desk.count("quote") == 0
        # The admin takes longer than the step's 4 s timeout.
        time.sleep(max(0.0, 5.0 - (time.monotonic() - began)))
        decided = admin.post(f"/approvals/{approval_id}", json={"decision": decision})
        assert decided.status_code == 200, decided.text
        done = flows.run(dana, run, "completed", "failed", seconds=60)
        ended = run_task(dana, "onward-flow", run["id"])
    # The run no longer shows the approval, decided.
    assert "approval" not in ended.get("metadata", {}), ended
    if decision == "approve":
        # Decided after the step's 4 s: the clock stood still while it waited.
        assert done["state"] == "completed", done
        assert done["output"]["total"] == 23.75, done
        assert flows.desk.count("quote") == 1
    else:
        assert done["state"] == "failed", done
        assert "REJECTED" in done["error"], done
        assert flows.desk.count("quote") == 0
    assert [c.get("exchange") for c in onward.calls if "exchange" in c] == [200]


@pytest.mark.crash
def test_a_call_held_onwards_across_a_sigkill(tmp_path: Path, database_url: str | None) -> None:
    """The gateway SIGKILLed while the run shows the relay's held call:
    started again, the step re-attaches to the relay's task, shows the same
    approval, and approving it lets the call, the relay and the run go on --
    the desk quoted once."""
    with crashable(tmp_path, database_url, ONWARD_POLICY) as world:
        onward = Onward(world.gateway.url, "relay", "sales", "quote")
        relay = ServerThread(lambda url: onward_app(url, onward)).start()
        try:
            with world.gateway.client("admin", ADMIN_SCOPE) as admin:
                card = relay.url + "/.well-known/agent-card.json"
                added = admin.post("/agents", json={"card_url": card, "id": "relay"})
                assert added.status_code == 201, added.text
                issued = admin.post("/agents/relay/credentials", json={"method": "client_secret"})
                assert issued.status_code == 201, issued.text
                onward.secret = issued.json()["client_secret"]
                registered = admin.post("/flows", json=FLOW)
                assert registered.status_code == 201, registered.text
            run_id = world.start("onward-flow", {})

            def shown(run: dict[str, Any]) -> bool:
                step: dict[str, Any] = next((s for s in run["steps"] if s["id"] == "relayed"), {})
                return bool(run["state"] == "input_required" and step.get("approval_id"))

            before = world.until("onward-flow", run_id, shown)
            approval_id = next(s for s in before["steps"] if s["id"] == "relayed")["approval_id"]
            world.restart()
            after = world.until("onward-flow", run_id, shown)
            assert next(s for s in after["steps"] if s["id"] == "relayed")["approval_id"] == (
                approval_id
            )
            with world.gateway.client("admin", ADMIN_SCOPE) as admin:
                decided = admin.post(f"/approvals/{approval_id}", json={"decision": "approve"})
            assert decided.status_code == 200, decided.text
            done = world.ended("onward-flow", run_id)
            assert done["state"] == "completed", done
            assert done["output"]["total"] == 23.75
            assert world.sent("quote") and len(world.sent("quote")) == 1
        finally:
            stop_all(relay)
