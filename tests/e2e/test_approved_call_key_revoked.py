"""A call made with an API key, held for approval, whose key is revoked
before the admin approves: the approved call is refused (`key_unusable`,
audited) and never reaches the agent -- on SQLite and PostgreSQL, over real
HTTP (A2A JSON-RPC with `X-Api-Key`, the REST API)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for

POLICY = """\
agents:
  worker:
    approval: true
"""


@pytest.fixture
def deployed(
    tmp_path: Path, database_url: str | None
) -> Iterator[tuple[Gateway, ServerThread, Recorder]]:
    seen = Recorder()
    worker = worker_agent(seen)
    gateway = start_gateway(tmp_path / "data", database_url, policy=POLICY)
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
            assert admin.post("/agents", json=body).status_code == 201
        yield gateway, worker, seen
    finally:
        stop_all(gateway.server, worker)


def send_message(gateway: Gateway, key: str) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "SendMessage",
        "params": {
            "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "task x"}]}
        },
    }
    answer = httpx.post(
        f"{gateway.url}/a2a/worker",
        json=body,
        headers={"A2A-Version": "1.0", "X-Api-Key": key},
        timeout=30,
        verify=client_tls(),
    )
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()["result"]["task"]
    return task


def test_a_revoked_keys_approved_call_is_refused(
    deployed: tuple[Gateway, ServerThread, Recorder],
) -> None:
    gateway, _, seen = deployed
    alice = gateway.token("alice", "work:run")
    with gateway.client(alice) as client:
        made = client.post("/api-keys", json={"name": "ci", "scopes": ["work:run"]})
    assert made.status_code == 201, made.text
    task = send_message(gateway, made.json()["key"])
    assert task["status"]["state"] == "TASK_STATE_AUTH_REQUIRED", task
    approval = task["status"]["message"]["metadata"]["approval"]
    with gateway.client(alice) as client:
        assert client.delete(f"/api-keys/{made.json()['id']}").status_code == 204
    with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text

        def refused() -> dict[str, Any] | None:
            items = admin.get("/audit", params={"user": "alice", "limit": 50}).json()["items"]
            found = [r for r in items if r["outcome"] == "key_unusable"]
            return found[0] if found else None

        record = wait_for(refused, what="the approved call refused and audited")
        final = wait_for(
            lambda: (shown := admin.get(f"/approvals/{approval}").json())["outcome"] and shown,
            what="the approval's outcome",
        )
    assert record["client_id"] == f"apikey:{made.json()['id']}"
    assert record["target"] == "worker"
    assert "revoked" in " ".join(record["reasons"]), record
    assert final["outcome"] != "TASK_STATE_COMPLETED", final
    assert not seen.calls(), "the revoked key's approved call reached the agent"
