"""A2A tasks the gateway lost contact with are reconciled (gateway.agents.reconcile).

An official-SDK A2A agent streams a slow task through the gateway and is
stopped mid-stream. The gateway asks it about the task with backoff
(`a2a_reconcile_poll_seconds`) and, once `a2a_reconcile_max_seconds` have
passed, records the task failed with the reason: `ListTasks` stops saying
"working" and `GetTask` answers the record instead of -32603. An agent that
comes back without the task (restarted, its store empty) has it failed at
once. Bounds come from the settings, with slack.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.lost_tasks import LostTasks
from gateway.delegation.pipeline import Caller
from gateway.delegation.tasks import Owner, TaskRecords
from gateway.storage.db import migrated
from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

POLL = 0.3
LIMIT = 3.0
SLACK = 6.0


def rpc(gateway: Gateway, token: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        gateway.url + "/a2a/worker",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    )
    body: dict[str, Any] = answer.json()
    return body


def stream_until_working(
    gateway: Gateway, token: str
) -> tuple[str, Iterator[str], httpx.Response, httpx.Client]:
    """Open a streaming SendMessage for a slow task; return its id once working."""
    message = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "slow 60"}]}
    client = httpx.Client(timeout=httpx.Timeout(30, read=120), verify=client_tls())
    request = client.build_request(
        "POST",
        gateway.url + "/a2a/worker",
        json={"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
              "params": {"message": message}},
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0",
                 "Accept": "text/event-stream"},
    )  # fmt: skip
    response = client.send(request, stream=True)
    lines = response.iter_lines()
    for line in lines:
        if line.startswith("data:") and "TASK_STATE_WORKING" in line:
            result = json.loads(line[5:])["result"]
            update = result.get("statusUpdate") or result.get("task")
            task_id = update.get("taskId") or update.get("id")
            return str(task_id), lines, response, client
    raise AssertionError("the stream ended before the task was working")


def wait_for_state(
    gateway: Gateway, token: str, task_id: str, state: str, within: float
) -> dict[str, Any]:

    def reached() -> dict[str, Any] | None:
        listed = rpc(gateway, token, "ListTasks", {})["result"]["tasks"]
        task: dict[str, Any] = next(t for t in listed if t["id"] == task_id)
        return task if task["status"]["state"] == state else None

    return wait_for(reached, within, every=0.1, what=f"task {task_id} {state}")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(
        tmp_path / "data",
        None,
        a2a_reconcile_poll_seconds=POLL,
        a2a_reconcile_max_seconds=LIMIT,
    )
    yield gw
    gw.stop()


def register(gateway: Gateway, worker: ServerThread) -> None:
    with gateway.client() as admin:
        body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
        answer = admin.post("/agents", json=body)
        assert answer.status_code == 201, answer.text


def reason(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in task["status"]["message"]["parts"])


def test_an_agent_killed_mid_stream_has_its_task_failed_after_the_limit(
    gateway: Gateway,
) -> None:
    worker = worker_agent()
    register(gateway, worker)
    token = gateway.token("alice")
    task_id, lines, response, client = stream_until_working(gateway, token)
    try:
        worker.stop()  # the agent dies with the task at work
        lost = time.monotonic()
        for _ in lines:  # the gateway ends the caller's stream
            pass
    except httpx.HTTPError:
        pass
    finally:
        response.close()
        client.close()
    failed = wait_for_state(gateway, token, task_id, "TASK_STATE_FAILED", LIMIT + SLACK)
    assert time.monotonic() - lost >= LIMIT - POLL  # not before the limit
    assert "lost contact with agent worker" in reason(failed)
    assert failed["metadata"]["gatewayVerdict"] == "lost-contact"
    # GetTask answers the record (the agent is still gone), not -32603.
    answer = rpc(gateway, token, "GetTask", {"id": task_id})
    assert answer["result"]["status"]["state"] == "TASK_STATE_FAILED", answer
    with gateway.client() as admin:
        audit = admin.get("/audit", params={"agent": "worker", "limit": 200}).json()["items"]
    assert any(r["event"] == "a2a.reconcile" and r["outcome"] == "lost_contact" for r in audit)


def test_an_agent_back_without_the_task_has_it_failed_at_once(gateway: Gateway) -> None:
    worker = worker_agent()
    port = worker.port
    register(gateway, worker)
    token = gateway.token("alice")
    task_id, lines, response, client = stream_until_working(gateway, token)
    try:
        worker.stop()
        for _ in lines:
            pass
    except httpx.HTTPError:
        pass
    finally:
        response.close()
        client.close()
    # The same agent again, restarted on its port with an empty task store.
    again = worker_agent(port=port)
    try:
        failed = wait_for_state(gateway, token, task_id, "TASK_STATE_FAILED", SLACK)
        assert "no longer knows this task" in reason(failed)
    finally:
        again.stop()


async def test_one_replica_takes_each_attempt(tmp_path: Path) -> None:
    """Two replicas read the same due task; only one may ask the agent."""
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", None) as engine:
        await _one_winner(engine)


async def _one_winner(engine: AsyncEngine) -> None:
    from a2a.types import Task, TaskState

    owner = Owner("alice", "https://idp.example")
    task = Task(id="t-1", context_id="c-1")
    task.status.state = TaskState.TASK_STATE_WORKING
    assert await TaskRecords(engine).record("worker", owner, task)
    caller = Caller("alice", "https://idp.example", frozenset(), ("app",), "app")
    one, two = LostTasks(engine), LostTasks(engine)
    assert await one.lost("worker", owner, "t-1", caller)
    (seen_by_one,) = await one.due()
    (seen_by_two,) = await two.due()
    later = datetime.now(UTC) + timedelta(seconds=5)
    taken = await asyncio.gather(one.take(seen_by_one, later), two.take(seen_by_two, later))
    assert sorted(taken) == [False, True]
    assert await one.due() == []  # not due again before its backoff
    # An end recorded by anyone stops reconciling.
    task.status.state = TaskState.TASK_STATE_COMPLETED
    assert await TaskRecords(engine).record("worker", owner, task)
    assert not await one.lost("worker", owner, "t-1", caller)
