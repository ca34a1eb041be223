"""A call's audit record is written before its caller hears the outcome, at
the A2A door (docs/delegation.md, audit): an answer, a stream's last word, a refusal --
on SQLite and PostgreSQL.

The gateway's audit writer is told to gather for ten seconds, and the test
reads the table itself (`GET /audit` would write what is gathered first):
a record there when the caller has its answer was written for the call.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.flows.engine import system_database_url
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import agent_card, inspecting_agent
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  echo: {}
  sales: {}
  forbidden:
    allow: false
"""


@dataclass
class Door:
    gateway: Gateway

    def post(self, agent: str, method: str) -> httpx.Response:
        message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "hi"}]}
        body = {"jsonrpc": "2.0", "id": "1", "method": method, "params": {"message": message}}
        headers = {"Authorization": f"Bearer {self.gateway.token('dana')}", "A2A-Version": "1.0"}
        return httpx.post(
            f"{self.gateway.url}/a2a/{agent}",
            json=body,
            headers=headers,
            timeout=30,
            verify=client_tls(),
        )

    def stream_until_completed(self, agent: str) -> list[dict[str, Any]]:
        """The events of a `SendStreamingMessage` up to the task's end, the
        table's records read right then, with the stream still open."""
        message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "hi"}]}
        body = {"jsonrpc": "2.0", "id": "1", "method": "SendStreamingMessage"}
        headers = {"Authorization": f"Bearer {self.gateway.token('dana')}", "A2A-Version": "1.0"}
        url = f"{self.gateway.url}/a2a/{agent}"
        payload = {**body, "params": {"message": message}}
        with httpx.stream(
            "POST", url, json=payload, headers=headers, timeout=30, verify=client_tls()
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data:") and "TASK_STATE_COMPLETED" in line:
                    assert "error" not in json.loads(line[5:])
                    return self.records(agent)
        raise AssertionError("the stream ended without the task's end")

    def records(self, agent: str) -> list[dict[str, Any]]:
        """The calls' records in the table (not the agent's registration)."""
        url = system_database_url(self.gateway.settings.effective_database_url)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT event, decision, outcome FROM audit_events"
                        " WHERE target = :t AND event NOT LIKE 'agent.%'"
                    ),
                    {"t": agent},
                )
                return [dict(r._mapping) for r in rows]
        finally:
            engine.dispose()


@pytest.fixture
def door(tmp_path: Path, database_url: str | None) -> Iterator[Door]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    echo, _ = inspecting_agent(lambda url: agent_card("Echo", url, [{"id": "say"}]))
    forbidden, _ = inspecting_agent(lambda url: agent_card("Forbidden", url, [{"id": "say"}]))
    sales = ServerThread(lambda url: sales_desk_app(url, SalesDesk())).start()
    servers: list[ServerThread] = [echo, forbidden, sales]
    gateway = start_gateway(
        tmp_path / "data", database_url, policy_file=policy, audit_flush_seconds=10
    )
    servers.insert(0, gateway.server)
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            for agent_id, server in (("echo", echo), ("forbidden", forbidden)):
                added = admin.post("/agents", json={"card_url": server.url, "id": agent_id})
                assert added.status_code == 201, added.text
            card = sales.url + "/.well-known/agent-card.json"
            added = admin.post("/agents", json={"card_url": card, "id": "sales"})
            assert added.status_code == 201, added.text
        yield Door(gateway)
    finally:
        stop_all(*servers)


def test_an_answer_is_audited_before_the_caller_has_it(door: Door) -> None:
    answered = door.post("echo", "SendMessage")
    assert answered.status_code == 200 and "result" in answered.json(), answered.text
    assert door.records("echo") == [
        {"event": "a2a.SendMessage", "decision": "allow", "outcome": "ok"}
    ]


def test_a_streams_end_is_audited_before_the_caller_hears_it(door: Door) -> None:
    assert door.stream_until_completed("sales") == [
        {"event": "a2a.SendStreamingMessage", "decision": "allow", "outcome": "ok"}
    ]


def test_a_refusal_is_audited_before_the_caller_has_it(door: Door) -> None:
    refused = door.post("forbidden", "SendMessage")
    assert "error" in refused.json(), refused.text
    assert [r["decision"] for r in door.records("forbidden")] == ["deny"]
