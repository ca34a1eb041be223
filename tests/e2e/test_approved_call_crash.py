"""An approved call in flight when its gateway is killed (SIGKILL), on SQLite
and PostgreSQL: the gateway restarted on the same data follows the agent's
task instead of calling again (an approval covers one call), and the audit
holds the record of the send the kill interrupted -- with the token the agent
got -- although the call's own record was never written (issue 32.3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

# Kills gateway processes: on one database each in `make test` (`tests/conftest.py`).
pytestmark = pytest.mark.crash

POLICY = """\
version: 1
agents:
  sales:
    require: [sales:quote]
    grant: [sales:quote]
    approval: true
"""


@pytest.fixture
def gateway(tmp_path: Path, database_url: str | None) -> Iterator[tuple[GatewayProcess, SalesDesk]]:
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    process = GatewayProcess(
        tmp_path / "data",
        database_url=database_url,
        policy_file=policy,
        settings={"gateway_run_poll_seconds": 0.5},
    )
    try:
        process.start()
        with process.client("admin", ADMIN_SCOPE) as admin:
            body = {"card_url": sales.url + "/.well-known/agent-card.json", "id": "sales"}
            assert admin.post("/agents", json=body).status_code == 201
        yield process, desk
    finally:
        process.stop()
        sales.stop()


def _rpc(process: GatewayProcess, method: str, params: dict[str, Any]) -> dict[str, Any]:
    with process.client("dana", "sales:quote") as dana:
        answer = dana.post(
            "/a2a/sales",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers={"A2A-Version": "1.0"},
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert "result" in body, body
    return body


def _task(process: GatewayProcess, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = _rpc(process, "GetTask", {"id": task_id})["result"]
    return task


def _until(process: GatewayProcess, task_id: str, done: Any, seconds: float = 60) -> dict[str, Any]:

    def ended() -> dict[str, Any] | None:
        try:
            task = _task(process, task_id)
        except (httpx.HTTPError, AssertionError):
            return None  # restarting
        return task if done(task) else None

    return wait_for(ended, seconds, every=0.1, what=f"task {task_id} as awaited")


def test_an_approved_call_killed_mid_call_is_followed_and_its_send_is_in_the_audit(
    gateway: tuple[GatewayProcess, SalesDesk],
) -> None:
    process, desk = gateway
    message = {
        "messageId": uuid.uuid4().hex,
        "role": "ROLE_USER",
        "parts": [{"data": {"seconds": 5}}],
        "metadata": {"skill": "work"},
    }
    held = _rpc(process, "SendMessage", {"message": message, "configuration": {}})["result"]
    task = held["task"]
    assert task["status"]["state"] == "TASK_STATE_AUTH_REQUIRED", task
    approval = task["status"]["message"]["metadata"]["approval"]
    with process.client("admin", ADMIN_SCOPE) as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    # Killed once the agent has named its task: the call is in flight.
    _until(process, task["id"], lambda t: "upstreamTaskId" in t.get("metadata", {}))
    process.kill()
    assert desk.count("work") == 1
    process.start()
    done = _until(process, task["id"], lambda t: t["status"]["state"] == "TASK_STATE_COMPLETED")
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert desk.count("work") == 1  # followed, not called again
    # Taken over at once by the same replica restarted (its id is fixed, as a
    # StatefulSet pod's): the runner finds the call it was
    # making -- followed to its end, or ended meanwhile (the gateway's
    # reconciler asked the agent first) -- and records the send.
    interrupted = wait_for(
        lambda: _interrupted(process), 30, every=0.2, what="a record of the interrupted send"
    )
    [record] = interrupted
    assert record["event"] == "a2a.approved" and record["decision"] == "allow"
    assert record["subject"] == "dana" and record["action"] == "work"
    assert record["detail"] in (
        "followed: the agent had named its task",
        "its task had ended meanwhile (TASK_STATE_COMPLETED)",
    )
    assert record["token_id"] and record["trace_id"]


def _interrupted(process: GatewayProcess) -> list[dict[str, Any]]:
    with process.client("admin", ADMIN_SCOPE) as admin:
        page = admin.get("/audit", params={"agent": "sales", "limit": 1000})
    assert page.status_code == 200, page.text
    return [r for r in page.json()["items"] if r["outcome"] == "interrupted"]
