"""`wait: {task: ...}` (SQLite and PostgreSQL): a run waits for another
agent's task -- here the sales desk's (official a2a-sdk), delegated by the
same user in a call of their own through the gateway -- and goes on with it
once the gateway records it in the state waited for: woken by that record,
not by the slow poll (set to an hour). Another user's task fails
the step exactly as a task that does not exist; a task that ends otherwise,
or not in time, fails or goes on as the step says; a bad wait is refused at
registration naming its step and field."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.flows import POLICY, FlowSetup, flow_setup, messages_of
from tests.support.waiting import wait_for

FLOW_ID = "await-work"
ENDS = ["completed", "failed", "canceled", "rejected"]  # the default states


def waiting_flow(flow_id: str = FLOW_ID, **wait: Any) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": flow_id,
        "name": "Wait for the user's task, then reply",
        "input": {"type": "object", "properties": {"task": {"type": "string"}}},
        "steps": [
            {"id": "worked", "wait": {"task": {"agent": "sales", "id": "input.task"}, **wait}},
            {
                "id": "reply",
                "call": {"agent": "sales", "skill": "reply"},
                "input": "{customer: 'ACME', total: steps.worked.output.result.worked}",
            },
        ],
    }


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, waiting_flow() registered
    once: each reads its own runs, the desk's messages of them (`messages_of`) and the
    audit records since it began (`_since`)."""
    tmp_path = tmp_path_factory.mktemp("task-waits")
    policy = POLICY + "".join(
        f"  {flow}:\n    grant: [sales:quote]\n"
        for flow in (FLOW_ID, "await-fail", "await-continue", "await-cancel")
    )
    # A flow the policy lets use the inventory only: it may not read the sales desk's tasks.
    policy += "  await-denied:\n    grant: [inventory:read]\n"
    # The slow poll of the record an hour away: a run that goes on was woken.
    with flow_setup(
        tmp_path, module_database_url, policy, flow_checkpoint_poll_seconds=3600
    ) as made:
        assert made.register(waiting_flow()).status_code == 201
        yield made


def _since(setup: FlowSetup) -> int:
    """The id of the latest audit record: what a test reads comes after it."""
    with setup.admin() as admin:
        items = admin.get("/audit", params={"kind": "all", "limit": 1}).json()["items"]
    return int(items[0]["id"]) if items else 0


def _rpc(client: httpx.Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = client.post("/a2a/sales", json=body, headers={"A2A-Version": "1.0"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    assert "result" in found, found
    result: dict[str, Any] = found["result"]
    return result


def _work(client: httpx.Client, seconds: float) -> str:
    """A task of the sales desk, answered at once while it works; its id."""
    message = {
        "messageId": f"m-{time.monotonic_ns()}",
        "role": "ROLE_USER",
        "parts": [{"data": {"seconds": seconds}}],
        "metadata": {"skill": "work"},
    }
    params = {"message": message, "configuration": {"returnImmediately": True}}
    task: dict[str, Any] = _rpc(client, "SendMessage", params)["task"]
    assert task["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING"), task
    task_id: str = task["id"]
    return task_id


def _until_completed(client: httpx.Client, task_id: str) -> None:
    """The user follows their task (GetTask through the gateway) to its end:
    the gateway records it, and that record wakes the waiting run."""
    wait_for(
        lambda: (
            _rpc(client, "GetTask", {"id": task_id})["status"]["state"] == "TASK_STATE_COMPLETED"
        ),
        20,
        every=0.1,
        what="the task completed",
    )


def _start(client: httpx.Client, task_id: str, flow_id: str = FLOW_ID) -> dict[str, Any]:
    started = client.post(f"/flows/{flow_id}/runs", json={"input": {"task": task_id}})
    assert started.status_code == 202, started.text
    run: dict[str, Any] = started.json()
    return run


def _steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in run["steps"]}


def _until_waiting(client: httpx.Client, run: dict[str, Any]) -> None:

    def waiting() -> bool:
        seen = client.get(f"/flows/{run['flow_id']}/runs/{run['id']}").json()
        if _steps(seen).get("worked", {}).get("state") == "waiting":
            return True
        assert seen["state"] not in ("completed", "failed"), seen
        return False

    wait_for(waiting, 20, what="the run waiting on the task")


def test_the_run_goes_on_when_the_users_task_completes(setup: FlowSetup) -> None:
    with setup.user() as dana:
        task_id = _work(dana, 1.0)
        run = _start(dana, task_id)
        _until_waiting(dana, run)
        _until_completed(dana, task_id)
        # Woken by the record of the task's end: the poll is an hour away.
        done = setup.run(dana, run, "completed", "failed")
        assert done["state"] == "completed", done
        worked = _steps(done)["worked"]
        assert worked["input"] == {"agent": "sales", "task": task_id, "states": ENDS}
        output = worked["output"]
        assert (output["id"], output["agent"], output["state"]) == (task_id, "sales", "completed")
        assert output["result"] == {"worked": 1.0}
        assert output["artifacts"][0]["parts"][0]["data"] == {"worked": 1.0}
        assert _steps(done)["reply"]["output"] == "Dear ACME, your quote is 1.0 EUR."
        # A task already in the state when the step starts: the run goes straight on.
        again = setup.run(dana, _start(dana, task_id), "completed", "failed", seconds=15)
        assert again["state"] == "completed", again
        assert _steps(again)["worked"]["output"] == output


def test_another_users_task_fails_the_step_as_no_task_does(setup: FlowSetup) -> None:
    after = _since(setup)
    with setup.user("erin") as erin:
        theirs = _work(erin, 0.2)
        _until_completed(erin, theirs)
    reasons = []
    runs: list[dict[str, Any]] = []  # dana's runs, of the test's own
    with setup.user() as dana:
        for task_id in (theirs, "no-such-task", "x" * 300):
            done = setup.run(dana, _start(dana, task_id), "completed", "failed")
            runs.append(done)
            assert done["state"] == "failed", done
            worked = _steps(done)["worked"]
            assert worked["state"] == "failed" and worked["output"] is None
            assert worked["error"] == f"task {task_id!r} of agent sales not found"
            reasons.append(done["error"].replace(task_id, "<id>"))
            assert "reply" not in _steps(done) or _steps(done)["reply"]["state"] != "completed"
    # The same answer for both: nothing says that erin's task exists.
    assert set(reasons) == {"step worked failed: task '<id>' of agent sales not found"}
    assert messages_of(setup.desk.sent("reply"), *runs) == []
    # Nor did the gateway follow erin's task at the agent for dana.
    with setup.admin() as admin:
        params: dict[str, str | int] = {"user": "dana", "after_id": after, "limit": 1000}
        items = admin.get("/audit", params=params).json()["items"]
    looked = {i["event"] for i in items} & {"a2a.SubscribeToTask", "a2a.GetTask"}
    assert not looked, items


def test_reading_the_task_is_decided_by_the_policy_as_a_call_would_be(
    setup: FlowSetup,
) -> None:
    """The user owns the task, but the flow may not use the agent: the wait is
    refused with the policy's reason (and audited), never read."""
    assert setup.register(waiting_flow("await-denied")).status_code == 201
    with setup.user() as dana:
        task_id = _work(dana, 0.2)
        _until_completed(dana, task_id)
        done = setup.run(dana, _start(dana, task_id, "await-denied"), "completed", "failed")
    assert done["state"] == "failed", done
    worked = _steps(done)["worked"]
    assert worked["error"].startswith("refused by the policy: "), worked
    assert worked["output"] is None
    with setup.admin() as admin:
        records = admin.get("/audit", params={"trace": done["trace_id"]}).json()["items"]
    denied = [r for r in records if r["event"] == "flow.wait"]
    assert denied and all(r["decision"] == "deny" for r in denied), records


def test_a_task_not_in_the_state_in_time_or_ending_otherwise(setup: FlowSetup) -> None:
    for flow_id, on_timeout in (("await-fail", "fail"), ("await-continue", "continue")):
        document = waiting_flow(flow_id, timeout_seconds=0.5, on_timeout=on_timeout)
        document["steps"][1]["input"] = "{customer: 'nobody', total: `0`}"
        assert setup.register(document).status_code == 201
    assert setup.register(waiting_flow("await-cancel", states=["canceled"])).status_code == 201
    with setup.user() as dana:
        task_id = _work(dana, 3.0)
        failed = setup.run(dana, _start(dana, task_id, "await-fail"), "completed", "failed")
        went_on = setup.run(dana, _start(dana, task_id, "await-continue"), "completed", "failed")
        _until_completed(dana, task_id)
        otherwise = setup.run(dana, _start(dana, task_id, "await-cancel"), "completed", "failed")
    timeout = f"task {task_id} of agent sales not completed or failed or canceled or rejected "
    timeout += "within 0.5 s"
    assert failed["state"] == "failed" and _steps(failed)["worked"]["error"] == timeout
    assert went_on["state"] == "completed", went_on
    assert _steps(went_on)["worked"]["output"] is None
    assert _steps(went_on)["worked"]["error"] == timeout
    # An end is final: a task that completed will never be canceled.
    assert otherwise["state"] == "failed", otherwise
    said = f"task {task_id} of agent sales ended completed, not canceled"
    assert _steps(otherwise)["worked"]["error"] == said


def test_a_bad_task_wait_is_refused_naming_its_step_and_field(setup: FlowSetup) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"task": {"agent": "nobody", "id": "input.task"}}, "steps[0].wait.task.agent", "no agent"),
        (
            {"task": {"agent": "sales", "id": "input.task"}, "states": ["done"]},
            "steps[0].wait.states[0]",
            "'input_required'",
        ),
        (
            {"task": {"agent": "sales", "id": "steps.reply.output"}},
            "steps[0].wait.task.id",
            "has not run yet",
        ),
        (
            {"task": {"agent": "sales", "id": "order.task"}},
            "steps[0].wait.task.id",
            "'order' is not known here",
        ),
        (
            {"event": "paid", "task": {"agent": "sales", "id": "input.task"}},
            "steps[0].wait",
            "exactly one of event or task",
        ),
        ({"event": "paid", "states": ["completed"]}, "steps[0].wait", "states go with task"),
    ]
    for wait, field, says in cases:
        document = waiting_flow()
        document["steps"][0]["wait"] = wait
        refused = setup.register(document)
        assert refused.status_code == 422, refused.text
        errors = {e["field"]: e for e in refused.json()["errors"]}
        assert field in errors, (wait, errors)
        assert says in errors[field]["message"], (wait, errors)
        assert errors[field]["step"] == "worked"
