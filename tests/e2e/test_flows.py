"""Flows end to end, on SQLite and PostgreSQL: an A2A agent (official a2a-sdk)
and an MCP server (official mcp SDK) called by a registered flow, over real
HTTP on 127.0.0.1, with the policy deciding every step."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    Task,
    TaskState,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct, Value

from registry.tls import client_tls
from tests.support.flows import POLICY, QUOTE_FLOW, FlowSetup, flow_setup, messages_of
from tests.support.waiting import wait_for, wait_for_awaited


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, quote-flow registered once:
    each reads the desk's messages of its own runs (`messages_of`), and a test that
    lists a user's runs has users of its own. The two that rewrite the policy
    put it back, in force, before they end: a gateway of their own would have
    no flow engine while this one runs (DBOS is one per process)."""
    with flow_setup(tmp_path_factory.mktemp("flows"), module_database_url) as made:
        registered = made.register(QUOTE_FLOW)
        assert registered.status_code == 201, registered.text
        yield made


def test_a_small_order_runs_every_step_without_a_checkpoint(setup: FlowSetup) -> None:
    with setup.user() as dana:
        started = dana.post(
            "/flows/quote-flow/runs",
            json={"input": {"sku": "X-100", "quantity": 10, "customer": "ACME"}},
        )
        assert started.status_code == 202, started.text
        run = setup.run(dana, started.json(), "completed", "failed")
    assert run["state"] == "completed", run
    assert run["output"]["quote"]["total"] == 118.75
    assert run["output"]["stock"]["enough"] is True
    assert "Dear ACME" in run["output"]["reply"]
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["manager"]["state"] == "skipped"
    assert steps["quote"]["token"]["actors"][-1] == "quote-flow"
    assert steps["quote"]["token"]["scopes"] == ["sales:quote"]
    assert steps["stock"]["token"]["scopes"] == ["inventory:read"]
    assert len(messages_of(setup.desk.sent("quote"), run)) == 1


BIG = {"sku": "X-100", "quantity": 500, "customer": "ACME"}


def _approval_of(run: dict[str, Any]) -> str:
    steps = {s["id"]: s for s in run["steps"]}
    approval = steps["manager"]["approval_id"]
    assert isinstance(approval, str)
    return approval


def test_a_big_discount_waits_for_a_manager_then_goes_on(setup: FlowSetup) -> None:
    with setup.user() as dana, setup.admin() as admin:
        run = dana.post("/flows/quote-flow/runs", json={"input": BIG}).json()
        waiting = setup.run(dana, run, "input_required")
        approval = _approval_of(waiting)
        shown = admin.get(f"/approvals/{approval}").json()
        assert shown["kind"] == "flow" and shown["target"] == "quote-flow"
        assert shown["requested_by"]["subject"] == "dana"
        assert shown["request"]["show"]["discount"] == 0.2
        assert shown["task_id"] == run["id"]
        assert messages_of(setup.desk.sent("reply"), run) == []
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve", "reason": "ok"})
        assert decided.status_code == 200, decided.text
        done = setup.run(dana, run, "completed", "failed", seconds=20)
    assert done["state"] == "completed", done
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["manager"]["output"] == {"approved": True, "by": "admin", "reason": "ok"}
    assert steps["manager"]["state"] == "completed"
    assert len(messages_of(setup.desk.sent("quote"), run)) == 1
    assert len(messages_of(setup.desk.sent("reply"), run)) == 1


def test_a_rejected_checkpoint_ends_the_run_rejected(setup: FlowSetup) -> None:
    with setup.user() as dana, setup.admin() as admin:
        run = dana.post("/flows/quote-flow/runs", json={"input": BIG}).json()
        approval = _approval_of(setup.run(dana, run, "input_required"))
        admin.post(f"/approvals/{approval}", json={"decision": "reject", "reason": "too much"})
        done = setup.run(dana, run, "rejected", "completed", "failed")
    assert done["state"] == "rejected"
    assert "too much" in done["error"]
    assert messages_of(setup.desk.sent("reply"), run) == []


def test_a_step_the_user_may_not_use_fails_the_run_with_the_reason(setup: FlowSetup) -> None:
    # dana may quote but not read the inventory: the flow gets no inventory:read
    with setup.user(scopes="sales:quote") as dana:
        run = dana.post("/flows/quote-flow/runs", json={"input": BIG}).json()
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "failed"
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["stock"]["state"] == "failed"
    assert "refused by the policy" in steps["stock"]["error"]
    assert "inventory:read" in steps["stock"]["error"]
    assert "stock" in done["error"] and "check" in done["error"]


def test_a_revoked_grant_stops_the_run_at_its_next_step(setup: FlowSetup) -> None:
    with setup.user() as dana, setup.admin() as admin:
        run = dana.post("/flows/quote-flow/runs", json={"input": BIG}).json()
        approval = _approval_of(setup.run(dana, run, "input_required"))
        revoked = dana.post(
            f"/flows/quote-flow/runs/{run['id']}/revoke", json={"reason": "changed my mind"}
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["grant"]["revoked_by"] == "dana"
        admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "failed"
    assert "revoked by dana: changed my mind" in done["error"]
    assert messages_of(setup.desk.sent("reply"), run) == []


def test_each_step_is_decided_by_the_policy_in_force_then(setup: FlowSetup) -> None:
    with setup.user() as dana, setup.admin() as admin:
        run = dana.post("/flows/quote-flow/runs", json={"input": BIG}).json()
        approval = _approval_of(setup.run(dana, run, "input_required"))
        # While the run waits, the policy stops anyone from delegating to sales.
        setup.policy.write_text(POLICY.replace("  sales:\n", "  sales:\n    allow: false\n"))
        try:
            in_force(admin, lambda p: p["agents"]["sales"].get("allow") is False)
            admin.post(f"/approvals/{approval}", json={"decision": "approve"})
            done = setup.run(dana, run, "completed", "failed")
            # The run's own record is written as it ends, maybe just after its state.
            audit = recorded(admin, run["trace_id"], "flow.run")
        finally:  # the module's policy again, in force, for the tests after this one
            setup.policy.write_text(POLICY)
            in_force(admin, lambda p: p["agents"]["sales"].get("allow") is not False)
    assert done["state"] == "failed"
    assert "step reply failed: refused by the policy" in done["error"]
    assert messages_of(setup.desk.sent("reply"), run) == []
    trail = [
        (r["event"], r["target"], r["decision"]) for r in audit if r["trace_id"] == run["trace_id"]
    ]
    assert ("flow.grant", "quote-flow", "allow") in trail
    assert ("flow.step", "sales", "deny") in trail
    assert ("flow.run", "quote-flow", "allow") in trail
    grant = next(
        r for r in audit if r["trace_id"] == run["trace_id"] and r["event"] == "flow.grant"
    )
    assert grant["actors"][-1] == "quote-flow"
    assert sorted(grant["scopes_granted"]) == ["inventory:read", "sales:quote"]


def test_runs_are_their_users_own(setup: FlowSetup) -> None:
    # Users of the test's own ("dana" and "erin" here): it lists their runs.
    with setup.user("hana") as dana, setup.user("iris") as erin:
        run = dana.post("/flows/quote-flow/runs", json={"input": BIG}).json()
        assert erin.get(f"/flows/quote-flow/runs/{run['id']}").status_code == 404
        assert erin.post(f"/flows/quote-flow/runs/{run['id']}/cancel").status_code == 404
        assert [r["id"] for r in erin.get("/flows/quote-flow/runs").json()] == []
        assert [r["id"] for r in dana.get("/flows/quote-flow/runs").json()] == [run["id"]]
        setup.run(dana, run, "input_required")
        cancelled = dana.post(f"/flows/quote-flow/runs/{run['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "canceled"
    with setup.admin() as admin:
        approval = _approval_of(cancelled.json())
        assert admin.get(f"/approvals/{approval}").json()["state"] == "withdrawn"


def test_a_run_cancelled_at_a_checkpoint_resumes_waiting_there(setup: FlowSetup) -> None:
    """Cancelling withdraws the checkpoint's request; resuming asks again (the
    same request, pending), and an approval then finishes the run -- nothing
    before the checkpoint is called twice."""
    with setup.user() as dana, setup.admin() as admin:
        run = dana.post("/flows/quote-flow/runs", json={"input": BIG}).json()
        approval = _approval_of(setup.run(dana, run, "input_required"))
        cancelled = dana.post(f"/flows/quote-flow/runs/{run['id']}/cancel")
        assert cancelled.json()["state"] == "canceled", cancelled.text
        assert admin.get(f"/approvals/{approval}").json()["state"] == "withdrawn"
        resumed = dana.post(f"/flows/quote-flow/runs/{run['id']}/resume")
        assert resumed.status_code == 200, resumed.text
        again = setup.run(dana, run, "input_required", "canceled", "failed")
        assert again["state"] == "input_required", again
        assert _approval_of(again) == approval
        assert admin.get(f"/approvals/{approval}").json()["state"] == "pending"
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        done = setup.run(dana, run, "completed", "failed", "canceled", seconds=20)
    assert done["state"] == "completed", done
    assert len(messages_of(setup.desk.sent("quote"), run)) == 1
    assert len(messages_of(setup.desk.sent("reply"), run)) == 1


def in_force(admin: httpx.Client, changed: Callable[[dict[str, Any]], bool]) -> None:
    """Until the gateway has read the policy file again (every 0.2 s here)."""
    wait_for(
        lambda: changed(admin.get("/policies").json()["policy"]),
        30,
        what="the policy read again",
    )


def recorded(admin: httpx.Client, trace_id: str, event: str) -> list[dict[str, Any]]:
    """The audit, once the trace holds ``event``."""

    def holding() -> list[dict[str, Any]] | None:
        audit: list[dict[str, Any]] = admin.get("/audit", params={"limit": 200}).json()["items"]
        if any(r["trace_id"] == trace_id and r["event"] == event for r in audit):
            return audit
        return None

    return wait_for(holding, 30, what=f"a {event} record for trace {trace_id}")


def test_a_user_the_policy_refuses_the_flow_cannot_start_it(setup: FlowSetup) -> None:
    setup.policy.write_text(
        POLICY.replace("  quote-flow:\n", "  quote-flow:\n    require: [sales:admin]\n")
    )
    try:
        with setup.admin() as admin:
            in_force(admin, lambda p: "sales:admin" in p["agents"]["quote-flow"].get("require", []))
        with setup.user() as dana:
            refused = dana.post("/flows/quote-flow/runs", json={"input": BIG})
    finally:  # the module's policy again, in force, for the tests after this one
        setup.policy.write_text(POLICY)
        with setup.admin() as admin:
            in_force(
                admin, lambda p: "sales:admin" not in p["agents"]["quote-flow"].get("require", [])
            )
    assert refused.status_code == 403, refused.text
    assert "sales:admin" in refused.json()["detail"]


def test_input_that_breaks_the_flows_schema_starts_nothing(setup: FlowSetup) -> None:
    with setup.user("jude") as dana:  # a user of its own: it lists the user's runs
        refused = dana.post("/flows/quote-flow/runs", json={"input": {"sku": "X-100"}})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "input.quantity"
        assert dana.get("/flows/quote-flow/runs").json() == []

    def refusal() -> dict[str, Any] | None:  # audited as a trigger's bad input is
        asked: dict[str, str | int] = {"user": "jude", "agent": "quote-flow", "limit": 200}
        with setup.admin() as admin:
            items = admin.get("/audit", params=asked).json()["items"]
        starts = [r for r in items if r["event"] == "flow.start"]
        return next((r for r in starts if r["outcome"] == "invalid_input"), None)

    said = wait_for(refusal, 30, what="the refused start's record")
    assert "input schema" in said["detail"] and "/quantity" in said["detail"]


# The flow as an A2A agent ---------------------------------------------------------------


@asynccontextmanager
async def a2a_client(setup: FlowSetup, token: str) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=client_tls()
    ) as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
        yield await factory.create_from_url(f"{setup.gateway.url}/a2a/quote-flow")


def _data_message(value: dict[str, Any]) -> SendMessageRequest:
    struct = Struct()
    struct.update(value)
    part = Part(data=Value(struct_value=struct), media_type="application/json")
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[part])
    return SendMessageRequest(
        message=message, configuration=SendMessageConfiguration(return_immediately=True)
    )


async def _poll(client: Client, task_id: str, *states: int) -> Task:
    async def reached() -> Task | None:
        task = await client.get_task(GetTaskRequest(id=task_id))
        return task if task.status.state in states else None

    return await wait_for_awaited(reached, 30, every=0.1, what=f"task {task_id} in {states}")


async def test_a_flow_is_an_agent_whose_task_is_the_run(setup: FlowSetup) -> None:
    def prepare() -> tuple[dict[str, Any], dict[str, Any], str]:
        with setup.admin() as admin:  # quote-flow: the module's, registered once
            card = admin.get("/agents/quote-flow/card").json()
            record = admin.get("/agents/quote-flow").json()
        return card, record, setup.gateway.token("dana", "sales:quote inventory:read")

    card, record, token = await asyncio.to_thread(prepare)
    assert [s["id"] for s in card["skills"]] == ["run"]
    assert record["skill_contracts"]["run"] == QUOTE_FLOW["input"]
    async with a2a_client(setup, token) as dana:
        events = [e async for e in dana.send_message(_data_message(BIG))]
        task = events[0].task
        waiting = await _poll(dana, task.id, TaskState.TASK_STATE_INPUT_REQUIRED)
        assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, waiting
        assert "Approve a discount" in waiting.status.message.parts[0].text
        cancelled = await dana.cancel_task(CancelTaskRequest(id=task.id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        small = {**BIG, "quantity": 10}
        events = [e async for e in dana.send_message(_data_message(small))]
        done = await _poll(dana, events[0].task.id, TaskState.TASK_STATE_COMPLETED)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
    result = MessageToDict(done.artifacts[0].parts[0].data)
    assert result["quote"]["total"] == 118.75

    def look() -> dict[str, Any]:
        with setup.user() as dana_http:
            found: dict[str, Any] = dana_http.get(f"/flows/quote-flow/runs/{task.id}").json()
            return found

    run = await asyncio.to_thread(look)
    assert run["state"] == "canceled"
