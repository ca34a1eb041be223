"""Flows started by a delegated task's end (SQLite and PostgreSQL).

A user's quote from the sales desk (an official-SDK A2A agent, through the
gateway's front door) starts the follow-up flow, which acts for that user --
with what the user's call carried, and nothing more -- once, however
often the task's end is seen again. A user whose call lacked what the flow
requires starts nothing (the denial is audited); a task of another skill, or
one that ended before the trigger existed, starts nothing; a bad trigger is
refused at registration naming its field.

A flow is an agent: a run of one (asked for at its A2A door) that ends
starts the flows triggered by it, with its output as their input, for its
user -- a failed run only those that ask for failures; a user whose call
lacked what the triggered flow requires starts nothing. Flows that would
start each other in a loop are refused at registration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from gateway.flows.engine import system_database_url
from gateway.flows.triggers import trigger_run_id
from gateway.storage.tables import a2a_tasks
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.waiting import wait_for

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


def _considered(setup: FlowSetup) -> None:
    """Until the triggers have considered every task end so far: the
    listeners heard each, and the sweep ran twice over the records since."""
    setup.gateway.told()
    setup.gateway.passes("flow-triggers", 2)


def _trigger_records(setup: FlowSetup, agent: str) -> list[dict[str, Any]]:
    """The flow.trigger records of ``agent`` in the audit, waited for (10 s)."""

    def found() -> list[dict[str, Any]]:
        with setup.admin() as admin:
            audit = admin.get("/audit", params={"agent": agent, "limit": 50}).json()
        return [r for r in audit["items"] if r["event"] == "flow.trigger"]

    return wait_for(found, seconds=10, every=0.1, what=f"a flow.trigger record of {agent}")


def _until_run(setup: FlowSetup, client: httpx.Client) -> dict[str, Any]:
    runs = wait_for(lambda: _runs(client), seconds=20, every=0.1, what="a run started")
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
        _considered(setup)
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
        denied = _trigger_records(setup, "follow-up")
        assert denied[0]["decision"] == "deny" and denied[0]["subject"] == "erin"
        assert "crm:write" in " ".join(denied[0]["reasons"])
        assert _runs(erin) == []


def test_another_skill_or_an_earlier_end_starts_nothing(setup: FlowSetup) -> None:
    with setup.user("dana", CRM) as dana:
        _send(dana, "quote", {"sku": "X-100", "quantity": 2})  # before the flow exists
        assert setup.register(FOLLOW_UP).status_code == 201
        _send(dana, "work", {"seconds": 0})  # not the trigger's skill
        _considered(setup)
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
        (  # its own step's task ending would start it again, and again
            {"id": "t", "task": {"agent": "sales", "skill": "reply"}},
            "triggers[0].task.agent",
            "a loop: each run would start the next for ever (follow-up -> sales -> follow-up)",
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


# A flow is an agent: its runs' ends start flows too.
QUOTING: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "quoting",
    "name": "Quote a quantity",
    "input": {"type": "object", "properties": {"quantity": {"type": "integer"}}},
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'X-100', quantity: input.quantity}",
        }
    ],
    "output": "{total: steps.quote.output.total}",
}
AFTER_QUOTE: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "after-quote",
    "name": "Reply once a quoting run completed",
    "input": {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]},
    "triggers": [{"id": "quoted", "task": {"agent": "quoting"}}],  # its output is the input
    "steps": [
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: run.user, total: input.total}",
        }
    ],
}
AFTER_FAILURE: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "after-failure",
    "name": "Tell the user a quoting run failed",
    "input": {"type": "object"},
    "triggers": [
        {
            "id": "failed",
            "task": {"agent": "quoting", "skill": "run", "states": ["failed"]},
            "input": "{run: task.id, user: task.user, state: task.state}",
        }
    ],
    "steps": [
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: input.user, total: `0`}",
        }
    ],
}
FLOW_POLICY = TRIGGER_POLICY + "".join(
    f"  {flow}:\n    require: [sales:quote{extra}]\n    grant: [sales:quote]\n"
    for flow, extra in (("quoting", ""), ("after-quote", ", crm:write"), ("after-failure", ""))
)


@pytest.fixture
def flows(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, FLOW_POLICY, flow_trigger_sweep_seconds=0.3) as made:
        for document in (QUOTING, AFTER_QUOTE, AFTER_FAILURE):
            registered = made.register(document)
            assert registered.status_code == 201, registered.text
        yield made


def _quote_through_the_flow(client: httpx.Client, quantity: int) -> dict[str, Any]:
    """A run of `quoting`, asked for at its A2A door, once it has ended."""
    message = {
        "messageId": f"m-{time.monotonic_ns()}",
        "role": "ROLE_USER",
        "parts": [{"data": {"quantity": quantity}}],
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    answer = client.post("/a2a/quoting", json=body, headers={"A2A-Version": "1.0"})
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()["result"]["task"]
    return task


def _flow_runs(client: httpx.Client, flow_id: str, count: int) -> list[dict[str, Any]]:

    def started() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = client.get(f"/flows/{flow_id}/runs").json()
        return runs if len(runs) >= count else None

    runs = wait_for(started, seconds=20, every=0.1, what=f"{count} runs of {flow_id}")
    assert len(runs) == count, runs
    found: list[dict[str, Any]] = runs
    return found


def test_a_flow_run_ending_starts_the_flows_triggered_by_it_for_its_user(
    flows: FlowSetup,
) -> None:
    with flows.user("dana", CRM) as dana:
        quoted = _quote_through_the_flow(dana, 4)
        assert quoted["status"]["state"] == "TASK_STATE_COMPLETED", quoted
        [run] = _flow_runs(dana, "after-quote", 1)
        run = flows.run(dana, run, "completed", "failed")
        assert run["state"] == "completed", run
        assert run["id"] == trigger_run_id("after-quote", "quoted", "quoting", quoted["id"])
        assert run["input"] == {"total": 47.5}  # the run's output, passed on
        # For the user whose run ended, as their own call through the same client.
        assert run["user"]["subject"] == "dana"
        assert run["grant"]["actors"][1:] == ["after-quote"]
        assert run["grant"]["scopes"] == ["sales:quote"]

        # A run that fails (the quantity breaks the agent's contract) starts
        # only the trigger that asks for failures.
        failed = _quote_through_the_flow(dana, 0)
        assert failed["status"]["state"] == "TASK_STATE_FAILED", failed
        [told] = _flow_runs(dana, "after-failure", 1)
        told = flows.run(dana, told, "completed", "failed")
        assert told["state"] == "completed", told
        assert told["input"] == {"run": failed["id"], "user": "dana", "state": "failed"}
        _considered(flows)  # nothing more
        assert len(_flow_runs(dana, "after-quote", 1)) == 1
        assert len(_flow_runs(dana, "after-failure", 1)) == 1
    assert flows.desk.count("reply") == 2


def test_a_flow_run_ending_starts_nothing_its_user_may_not_start(flows: FlowSetup) -> None:
    with flows.user("erin", "sales:quote") as erin:  # may quote; no crm:write
        quoted = _quote_through_the_flow(erin, 4)
        assert quoted["status"]["state"] == "TASK_STATE_COMPLETED", quoted
        denied = _trigger_records(flows, "after-quote")
        assert denied[0]["decision"] == "deny" and denied[0]["subject"] == "erin"
        assert "crm:write" in " ".join(denied[0]["reasons"])
        assert erin.get("/flows/after-quote/runs").json() == []


def test_flows_starting_each_other_in_a_loop_are_refused(flows: FlowSetup) -> None:
    # quoting's end starts after-quote; after-quote's end starting quoting loops.
    looping = {**QUOTING, "triggers": [{"id": "again", "task": {"agent": "after-quote"}}]}
    refused = flows.register(looping)
    assert refused.status_code == 422, refused.text
    errors = {e["field"]: e["message"] for e in refused.json()["errors"]}
    assert "quoting -> after-quote -> quoting" in errors["triggers[0].task.agent"], errors
    # So does calling, as a step, the flow whose end starts one.
    calling = {
        **AFTER_QUOTE,
        "steps": [{"id": "again", "call": {"agent": "quoting"}, "input": "{quantity: `1`}"}],
    }
    refused = flows.register(calling)
    assert refused.status_code == 422, refused.text
    errors = {e["field"]: e["message"] for e in refused.json()["errors"]}
    assert "a loop" in errors["triggers[0].task.agent"], errors


def test_a_run_end_the_gateway_was_not_told_of_is_started_by_the_sweep_once(
    tmp_path: Path, database_url: str | None
) -> None:
    """As after a crash between recording the run's end and telling the
    triggers: the sweep finds the end in the task records and starts the run,
    for the caller recorded with the run's task, once."""
    with flow_setup(tmp_path, database_url, FLOW_POLICY, flow_trigger_sweep_seconds=0.3) as setup:
        assert setup.register(QUOTING).status_code == 201
        with setup.user("dana", CRM) as dana:
            quoted = _quote_through_the_flow(dana, 4)
            assert quoted["status"]["state"] == "TASK_STATE_COMPLETED", quoted
            assert setup.register(AFTER_QUOTE).status_code == 201
            _considered(setup)  # it ended before the trigger existed: nothing
            assert dana.get("/flows/after-quote/runs").json() == []
            # Its end recorded only now, and no listener told.
            engine = create_engine(
                system_database_url(setup.gateway.settings.effective_database_url)
            )
            with engine.begin() as conn:
                conn.execute(
                    update(a2a_tasks)
                    .where(a2a_tasks.c.agent_id == "quoting", a2a_tasks.c.task_id == quoted["id"])
                    .values(updated_at=datetime.now(UTC))
                )
            engine.dispose()
            [run] = _flow_runs(dana, "after-quote", 1)
            assert run["id"] == trigger_run_id("after-quote", "quoted", "quoting", quoted["id"])
            run = setup.run(dana, run, "completed", "failed")
            assert run["state"] == "completed", run
            assert run["user"]["subject"] == "dana" and run["input"] == {"total": 47.5}
            _considered(setup)
            assert len(_flow_runs(dana, "after-quote", 1)) == 1
