"""A push config inside SendMessage never reaches another user's task.

The agent here makes one task per messageId (as an agent deduplicating
retries would). Bob's message makes `task-m-123`; Alice sends a message with
the same id and her own webhook inside it. The gateway refuses the agent's
answer (the task is Bob's: -32006), and must not leave Alice's config bound
to Bob's task -- nor let the agent bind it there with a notification through
Alice's relay. Real HTTP on 127.0.0.1, SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.server.routes import create_agent_card_routes
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.tls import client_tls
from tests.support.a2a_agents import Webhook, webhook
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for


class DedupAgent:
    """One task per messageId; keeps every request it was sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        # Set: before answering a message with a push config, the agent posts
        # this notification through the relay it was given (its status kept).
        self.notify_first: dict[str, Any] | None = None
        self.notified: list[int] = []
        self.server = ServerThread(self._app).start()

    def _app(self, url: str) -> Starlette:
        card = AgentCard(
            name="Dedup",
            description="one task per messageId",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
            ],
            capabilities=AgentCapabilities(push_notifications=True),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=[AgentSkill(id="work", name="Work", description="works", tags=["test"])],
        )

        async def answer(request: Request) -> Response:
            body = json.loads(await request.body())
            self.seen.append(body)
            relay = body["params"].get("configuration", {}).get("taskPushNotificationConfig")
            if relay is not None and self.notify_first is not None:
                async with httpx.AsyncClient(timeout=30, verify=client_tls()) as http:
                    pushed = await http.post(
                        relay["url"],
                        json=self.notify_first,
                        headers={"X-A2A-Notification-Token": relay["token"]},
                    )
                self.notified.append(pushed.status_code)
            message_id = body["params"]["message"]["messageId"]
            task = {
                "id": f"task-{message_id}",
                "contextId": f"ctx-{message_id}",
                "status": {"state": "TASK_STATE_WORKING"},
            }
            result = {"jsonrpc": "2.0", "id": body["id"], "result": {"task": task}}
            return Response(json.dumps(result), media_type="application/json")

        return Starlette(
            routes=[*create_agent_card_routes(card), Route("/", answer, methods=["POST"])]
        )


@pytest.fixture
def world(
    database_url: str | None, tmp_path: Path
) -> Iterator[tuple[Gateway, DedupAgent, Webhook]]:
    agent, hook = DedupAgent(), webhook()
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        with gateway.client() as admin:
            card = agent.server.url + "/.well-known/agent-card.json"
            added = admin.post("/agents", json={"card_url": card, "id": "dedup"})
            assert added.status_code == 201, added.text
        yield gateway, agent, hook
    finally:
        stop_all(gateway.server, agent.server, hook.server)


def _send(gateway: Gateway, token: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    headers = {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
    answer: dict[str, Any] = httpx.post(
        f"{gateway.url}/a2a/dedup", json=body, headers=headers, timeout=30, verify=client_tls()
    ).json()
    return answer


def _message(text: str) -> dict[str, Any]:
    return {"messageId": "m-123", "role": "ROLE_USER", "parts": [{"text": text}]}


def test_an_inline_config_is_not_left_on_another_users_task(
    world: tuple[Gateway, DedupAgent, Webhook],
) -> None:
    gateway, agent, hook = world
    bob, alice = gateway.token("bob", ""), gateway.token("alice", "")
    assert _send(gateway, bob, {"message": _message("bob's job")})["result"]["task"]["id"]
    inline = {"url": hook.url, "token": "alice's"}
    answer = _send(
        gateway,
        alice,
        {"message": _message("hi"), "configuration": {"taskPushNotificationConfig": inline}},
    )
    assert answer["error"]["code"] == -32006, answer  # the task id is Bob's
    relay = agent.seen[-1]["params"]["configuration"]["taskPushNotificationConfig"]
    assert relay["url"] != hook.url  # the agent was handed the gateway's relay
    # The agent pushes Bob's task's update to every config it holds for it.
    update = {
        "statusUpdate": {
            "taskId": "task-m-123",
            "contextId": "ctx-m-123",
            "status": {
                "state": "TASK_STATE_COMPLETED",
                "message": {"messageId": "x", "role": "ROLE_AGENT", "parts": [{"text": "BOB'S"}]},
            },
        }
    }
    pushed = httpx.post(
        relay["url"],
        json=update,
        headers={"X-A2A-Notification-Token": relay["token"]},
        verify=client_tls(),
    )
    assert pushed.status_code in (400, 401), pushed.text  # refused: not forwarded
    # The relay forwards before it answers (`relay_notification`): its refusal
    # is the decision, with nothing left to happen after it.
    assert not hook.received
    with httpx.Client(
        base_url=gateway.url,
        headers={"Authorization": f"Bearer {alice}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    ) as http:
        listed = http.post(
            "/a2a/dedup",
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "ListTaskPushNotificationConfigs",
                "params": {"taskId": "task-m-123"},
            },
        ).json()
    assert listed["error"]["code"] == -32001, listed  # Bob's task is "not found" for Alice


def test_a_notification_before_the_answer_binds_only_the_callers_own_task(
    world: tuple[Gateway, DedupAgent, Webhook],
) -> None:
    gateway, agent, hook = world
    bob, alice = gateway.token("bob", ""), gateway.token("alice", "")
    assert _send(gateway, bob, {"message": _message("bob's job")})["result"]["task"]["id"]
    inline = {"configuration": {"taskPushNotificationConfig": {"url": hook.url, "token": "a"}}}
    # Through Alice's relay, still pending, the agent names Bob's task first.
    agent.notify_first = {"statusUpdate": {"taskId": "task-m-123", "contextId": "ctx-m-123",
                          "status": {"state": "TASK_STATE_COMPLETED"}}}  # fmt: skip
    answer = _send(gateway, alice, {"message": {**_message("hi"), "messageId": "m-a"}, **inline})
    assert agent.notified == [400]  # refused, not bound, not forwarded
    assert answer["result"]["task"]["id"] == "task-m-a"  # her own task is unaffected
    # Her own new task, named by the agent before it answers: bound, forwarded.
    agent.notify_first = {"task": {"id": "task-m-b", "contextId": "ctx-m-b",
                          "status": {"state": "TASK_STATE_WORKING"}}}  # fmt: skip
    answer = _send(gateway, alice, {"message": {**_message("hi"), "messageId": "m-b"}, **inline})
    assert agent.notified == [400, 204]
    assert answer["result"]["task"]["id"] == "task-m-b"
    wait_for(lambda: hook.received, what="the notification of task-m-b")
    assert [body["task"]["id"] for _, body in hook.received] == ["task-m-b"]
    assert all(headers["x-a2a-notification-token"] == "a" for headers, _ in hook.received)
