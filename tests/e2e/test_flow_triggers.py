"""Flows started by a delegated task's end (SQLite and PostgreSQL).

A user's quote from the sales desk (an official-SDK A2A agent, through the
gateway's front door) starts the follow-up flow, which acts for that user --
with what the user's call carried, and nothing more -- once, however
often the task's end is seen again. A user whose call lacked what the flow
requires starts nothing (the denial is audited); a task of another skill, or
one that ended before the trigger existed, starts nothing; a bad trigger is
refused at registration naming its field.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.flows.triggers import trigger_run_id
from tests.support.flows import POLICY, FlowSetup, flow_setup

FOLLOW_UP: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "follow-up",
    "name": "Follow a quote up",
    "input": {
        "type": "object",
        "properties": {"total": {"type": "number"}, "customer": {"type": "string"}},
        "required": ["total"],
    },
    "triggers": [
        {
            "id": "quoted",
            "task": {"agent": "sales", "skill": "quote"},
            "input": "{total: task.output.total, customer: task.user}",
        }
    ],
    "steps": [
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: input.customer, total: input.total}",
        }
    ],
}

TRIGGER_POLICY = POLICY + (
    "  follow-up:\n    require: [sales:quote, crm:write]\n    grant: [sales:quote]\n"
)
CRM = "sales:quote crm:write"


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, TRIGGER_POLICY, flow_trigger_sweep_seconds=0.3) as made:
        yield made


def _send(client: httpx.Client, skill: str, data: dict[str, Any]) -> dict[str, Any]:
    message = {
        "messageId": f"m-{time.monotonic_ns()}",
        "role": "ROLE_USER",
        "parts": [{"data": data}],
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": message, "metadata": {"skill": skill}},
    }
    answer = client.post("/a2a/sales", json=body, headers={"A2A-Version": "1.0"})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]["task"]
    assert result["status"]["state"] == "TASK_STATE_COMPLETED", result
    return result


def _runs(client: httpx.Client) -> list[dict[str, Any]]:
    listed = client.get("/flows/follow-up/runs")
    assert listed.status_code == 200, listed.text
    runs: list[dict[str, Any]] = listed.json()
    return runs


def _until_run(setup: FlowSetup, client: httpx.Client) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while not (runs := _runs(client)):
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.1)
    assert len(runs) == 1, runs
    return setup.run(client, runs[0], "completed", "failed")


def test_a_quote_ending_starts_the_follow_up_for_its_user_once(setup: FlowSetup) -> None:
    assert setup.register(FOLLOW_UP).status_code == 201
    with setup.user("dana", CRM) as dana:
        task = _send(dana, "quote", {"sku": "X-100", "quantity": 4})
        run = _until_run(setup, dana)
        assert run["state"] == "completed", run
        assert run["id"] == trigger_run_id("follow-up", "quoted", "sales", task["id"])
        assert run["user"]["subject"] == "dana"
        assert run["input"] == {"total": 47.5, "customer": "dana"}
        # As the user's own call through the same client; what the policy grants.
        assert run["grant"]["actors"][1:] == ["follow-up"]
        assert run["grant"]["scopes"] == ["sales:quote"]
        assert {s["id"]: s["state"] for s in run["steps"]} == {"reply": "completed"}
        # The task's end seen again (GetTask records it again): still one run.
        for _ in range(3):
            body = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task["id"]}}
            assert dana.post("/a2a/sales", json=body, headers={"A2A-Version": "1.0"}).is_success
        time.sleep(1.0)  # several sweeps
        assert len(_runs(dana)) == 1
    assert setup.desk.count("reply") == 1
    with setup.admin() as admin:
        audit = admin.get("/audit", params={"agent": "follow-up", "limit": 50}).json()
    started = [r for r in audit["items"] if r["event"] == "flow.trigger" and r["outcome"] == "ok"]
    assert len(started) == 1 and started[0]["subject"] == "dana"


def test_a_user_whose_call_lacked_what_the_flow_requires_starts_nothing(
    setup: FlowSetup,
) -> None:
    assert setup.register(FOLLOW_UP).status_code == 201
    with setup.user("erin", "sales:quote") as erin:  # no crm:write
        _send(erin, "quote", {"sku": "X-100", "quantity": 1})
        deadline = time.monotonic() + 10
        while True:
            with setup.admin() as admin:
                audit = admin.get("/audit", params={"agent": "follow-up", "limit": 50}).json()
            denied = [r for r in audit["items"] if r["event"] == "flow.trigger"]
            if denied:
                break
            assert time.monotonic() < deadline, audit
            time.sleep(0.1)
        assert denied[0]["decision"] == "deny" and denied[0]["subject"] == "erin"
        assert "crm:write" in " ".join(denied[0]["reasons"])
        assert _runs(erin) == []


def test_another_skill_or_an_earlier_end_starts_nothing(setup: FlowSetup) -> None:
    with setup.user("dana", CRM) as dana:
        _send(dana, "quote", {"sku": "X-100", "quantity": 2})  # before the flow exists
        assert setup.register(FOLLOW_UP).status_code == 201
        _send(dana, "work", {"seconds": 0})  # not the trigger's skill
        time.sleep(1.5)  # several sweeps
        assert _runs(dana) == []


@pytest.mark.parametrize(
    ("trigger", "field", "says"),
    [
        ({"id": "t", "task": {"agent": "nobody"}}, "triggers[0].task.agent", "no agent"),
        (
            {"id": "t", "task": {"agent": "sales", "skill": "dance"}},
            "triggers[0].task.skill",
            "no skill",
        ),
        ({"id": "t", "task": {"agent": "follow-up"}}, "triggers[0].task.agent", "its own"),
        (
            {"id": "t", "task": {"agent": "sales"}, "input": "{total: input.total}"},
            "triggers[0].input",
            "reads only task",
        ),
        (
            {"id": "t", "task": {"agent": "sales", "states": ["done"]}},
            "triggers[0].task.states[0]",
            "",
        ),
    ],
)
def test_a_bad_trigger_is_refused_naming_its_field(
    setup: FlowSetup, trigger: dict[str, Any], field: str, says: str
) -> None:
    refused = setup.register({**FOLLOW_UP, "triggers": [trigger]})
    assert refused.status_code == 422, refused.text
    errors = {e["field"]: e["message"] for e in refused.json()["errors"]}
    assert field in errors, errors
    assert says in errors[field]
