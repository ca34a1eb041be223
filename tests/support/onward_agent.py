"""An agent that delegates onwards through the gateway, for e2e tests: an
official a2a-sdk A2A server whose one skill hands the work to another agent.

Called with a token the gateway minted for it, it does what a real agent
calling onwards does: RFC 8693 token exchange at the gateway's
``/oauth/token`` (its own client secret; the token it received as the
subject token; ``resource`` = the other agent's front door at the gateway),
then ``SendMessage`` to that front door with the exchanged token and
``GetTask`` until the task ends -- a call the policy holds waits there for an
admin. Its own task completes with the other agent's answer (the data of its
artifacts) or fails with the other task's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from a2a.helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Value
from starlette.applications import Starlette

from policies.exchange import ACCESS_TOKEN_TYPE
from registry.tls import client_tls

ENDS = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}


@dataclass
class Onward:
    """Where the agent calls onwards, and with which credential (set once
    the gateway issued it)."""

    gateway_url: str
    agent_id: str
    target: str
    target_skill: str
    secret: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)  # what it did, in order


class _Executor(AgentExecutor):
    def __init__(self, onward: Onward) -> None:
        self.onward = onward

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None
        task = context.current_task or new_task_from_user_message(message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        data = next((_data_of(p) for p in message.parts if p.HasField("data")), {})
        headers = (context.call_context.state if context.call_context else {}).get("headers", {})
        received = str(headers.get("authorization", "")).removeprefix("Bearer ").strip()
        try:
            outcome = await self._call_onwards(received, data)
        except Exception as exc:
            await updater.failed(updater.new_agent_message([new_text_part(f"onwards: {exc}")]))
            return
        state, said = outcome
        if state != "TASK_STATE_COMPLETED":
            await updater.failed(updater.new_agent_message([new_text_part(f"{state}: {said}")]))
            return
        value = Value()
        value.struct_value.update(said)
        await updater.add_artifact([Part(data=value)], name="onwards")
        await updater.complete()

    async def _call_onwards(self, token: str, data: dict[str, Any]) -> tuple[str, Any]:
        onward = self.onward
        assert onward.secret is not None, "the agent has no credential yet"
        front_door = f"{onward.gateway_url}/a2a/{onward.target}"
        async with httpx.AsyncClient(timeout=30, verify=client_tls()) as http:
            exchanged = await http.post(
                f"{onward.gateway_url}/oauth/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "subject_token": token,
                    "subject_token_type": ACCESS_TOKEN_TYPE,
                    "resource": front_door,
                },
                auth=(onward.agent_id, onward.secret),
            )
            onward.calls.append({"exchange": exchanged.status_code})
            exchanged.raise_for_status()
            headers = {
                "Authorization": f"Bearer {exchanged.json()['access_token']}",
                "A2A-Version": "1.0",
            }
            message = {
                "messageId": uuid.uuid4().hex,
                "role": "ROLE_USER",
                "parts": [{"data": data}],
                "metadata": {"skill": onward.target_skill},
            }
            sent = await _rpc(http, front_door, headers, "SendMessage", {"message": message})
            task = sent["task"]
            onward.calls.append({"sent": task["status"]["state"], "task": task["id"]})
            while task["status"]["state"] not in ENDS:
                await asyncio.sleep(0.2)
                # A gateway restarting meanwhile is asked again, as a client would.
                with contextlib.suppress(httpx.TransportError):
                    task = await _rpc(http, front_door, headers, "GetTask", {"id": task["id"]})
        if task["status"]["state"] != "TASK_STATE_COMPLETED":
            return task["status"]["state"], str(task["status"].get("message", ""))[:300]
        parts = [p for a in task.get("artifacts", []) for p in a.get("parts", [])]
        found: Any = next((p["data"] for p in parts if "data" in p), {})
        return "TASK_STATE_COMPLETED", found

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def _data_of(part: Part) -> dict[str, Any]:
    found = MessageToDict(part)["data"]
    return dict(found) if isinstance(found, dict) else {}


async def _rpc(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], method: str, params: Any
) -> dict[str, Any]:
    answer = await http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers=headers
    )
    answer.raise_for_status()
    body = answer.json()
    if "result" not in body:
        raise RuntimeError(f"{method}: {body.get('error')}")
    result: dict[str, Any] = body["result"]
    return result


def onward_card(url: str, name: str = "Relay") -> AgentCard:
    return AgentCard(
        name=name,
        description="Hands the work to another agent, through the gateway.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["application/json"],
        default_output_modes=["application/json"],
        skills=[
            AgentSkill(
                id="onwards", name="onwards", description="asks another agent", tags=["relay"]
            )
        ],
    )


def onward_app(url: str, onward: Onward) -> Starlette:
    card = onward_card(url)
    handler = DefaultRequestHandler(
        agent_executor=_Executor(onward), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/")
    return Starlette(routes=routes)
