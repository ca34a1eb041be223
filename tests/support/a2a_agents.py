"""Task-capable A2A agents built with the official SDK, in 1.0 and in 0.3.

`WorkerExecutor` reads the first word of the user's text:

* ``task <text>``  -> a task: working, an artifact "done: <text>", completed;
* ``slow <secs>``  -> a task that works for up to <secs> seconds (one status
  update per 0.1 s) unless it is cancelled first;
* ``ask``          -> a task that stops in input-required; the next message on
  that task completes it with "got: <text>";
* anything else    -> one Message, "echo: <text>".

`worker_agent()` serves it as an A2A 1.0 agent (JSON-RPC and HTTP+JSON, with
streaming); `legacy_worker_agent()` serves it as an A2A 0.3-only agent: a 0.3
card, 0.3 JSON-RPC, and every 1.0 request refused -- so a call that works
proves the gateway spoke 0.3 to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.tls import client_tls
from tests.support.inspecting import Recorder, buffered
from tests.support.servers import ServerThread, bound_socket


class WorkerExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        word, _, rest = text.partition(" ")
        current = context.current_task
        if current is not None and current.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            updater = TaskUpdater(event_queue, current.id, current.context_id)
            await updater.add_artifact([new_text_part(f"got: {text}")], name="answer")
            await updater.complete()
            return
        if word not in ("task", "slow", "ask"):
            await event_queue.enqueue_event(new_text_message(f"echo: {text}"))
            return
        assert context.message is not None
        task = current or new_task_from_user_message(context.message)
        if current is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if word == "ask":
            await updater.requires_input(new_text_message("which warehouse?"))
            return
        if word == "slow":
            deadline = asyncio.get_running_loop().time() + float(rest or "5")
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                await updater.update_status(TaskState.TASK_STATE_WORKING)
        await updater.add_artifact([new_text_part(f"done: {rest}")], name="result")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


SKILLS = [
    AgentSkill(id="work", name="Work", description="Does work, slowly or not.", tags=["test"])
]


def worker_card(base_url: str, name: str = "Worker") -> AgentCard:
    return AgentCard(
        name=name,
        description="A task-capable agent for the front door tests.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=base_url + "/", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=base_url, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=SKILLS,
    )


def worker_agent(
    recorder: Recorder | None = None, name: str = "Worker", *, port: int | None = None
) -> ServerThread:
    """``port``: on that port (say, the one a stopped worker had), else a free one."""
    recorder = recorder or Recorder()

    def build(url: str) -> ASGIApp:
        card = worker_card(url, name)
        configs = InMemoryPushNotificationConfigStore()
        handler = DefaultRequestHandler(
            agent_executor=WorkerExecutor(),
            task_store=InMemoryTaskStore(),
            agent_card=card,
            push_config_store=configs,
            push_sender=BasePushNotificationSender(
                httpx.AsyncClient(timeout=10, verify=client_tls()), configs
            ),
        )
        routes = (
            create_agent_card_routes(card)
            + create_jsonrpc_routes(handler, rpc_url="/")
            + create_rest_routes(handler)
        )
        return recorder.middleware(Starlette(routes=routes))

    return ServerThread(build, sock=None if port is None else bound_socket(port=port)).start()


def legacy_card(base_url: str) -> dict[str, Any]:
    """An A2A 0.3 card, as a 0.3 SDK publishes it."""
    return {
        "protocolVersion": "0.3.0",
        "name": "Legacy Worker",
        "description": "A 0.3-only agent.",
        "url": base_url + "/",
        "preferredTransport": "JSONRPC",
        "version": "0.3.0",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "work", "name": "Work", "description": "Does work.", "tags": ["test"]}],
    }


def _refuse_1_0(app: ASGIApp) -> ASGIApp:
    """A 0.3 agent knows neither the `A2A-Version: 1.0` dialect nor 1.0 methods."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope["headers"])
            body, replay = await buffered(receive)
            method = ""
            with contextlib.suppress(ValueError, AttributeError):
                method = str(json.loads(body).get("method", ""))
            if headers.get(b"a2a-version", b"0.3").startswith(b"1.") or "/" not in method:
                response = JSONResponse(
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32601, "message": f"0.3 agent: no {method}"},
                    }
                )
                await response(scope, replay, send)
                return
            await app(scope, replay, send)
            return
        await app(scope, receive, send)

    return wrapped


def legacy_worker_agent(recorder: Recorder | None = None) -> ServerThread:
    recorder = recorder or Recorder()

    def build(url: str) -> ASGIApp:
        from a2a.client.card_resolver import parse_agent_card

        raw = legacy_card(url)
        card = parse_agent_card(json.loads(json.dumps(raw)))
        handler = DefaultRequestHandler(
            agent_executor=WorkerExecutor(), task_store=InMemoryTaskStore(), agent_card=card
        )

        async def serve_card(_: Request) -> JSONResponse:
            return JSONResponse(raw)

        routes = [
            Route("/.well-known/agent-card.json", serve_card),
            *create_jsonrpc_routes(handler, rpc_url="/", enable_v0_3_compat=True),
        ]
        return recorder.middleware(_refuse_1_0(Starlette(routes=routes)))

    return ServerThread(build).start()


@dataclass
class Webhook:
    """A client's push notification endpoint that records what it is sent."""

    server: ServerThread
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url + "/hook"


def webhook() -> Webhook:
    hook = Webhook(server=None)  # type: ignore[arg-type]

    def build(_: str) -> ASGIApp:
        async def receive(request: Request) -> JSONResponse:
            hook.received.append((dict(request.headers), await request.json()))
            return JSONResponse({})

        return Starlette(routes=[Route("/hook", receive, methods=["POST"])])

    hook.server = ServerThread(build).start()
    return hook


# A scripted 1.0 agent: what it answers depends on the message's text, so one
# agent can misbehave in every way a test needs without shared state.
SCRIPTED_TASK_ID = "scripted-task"


def _scripted_answer(body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    request_id = body.get("id")
    message = body.get("params", {}).get("message", {})
    text = "".join(p.get("text", "") for p in message.get("parts", []))

    def result(value: Any, rid: Any = request_id) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": rid, "result": value}).encode()

    json_type = {"Content-Type": "application/json"}
    task = {
        "id": message.get("taskId") or f"{SCRIPTED_TASK_ID}-{message.get('messageId', '')}",
        "contextId": message.get("contextId") or "scripted-context",
        "status": {"state": "TASK_STATE_COMPLETED"},
    }
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {
        "task": (200, json_type, result({"task": task})),
        "message": (
            200,
            json_type,
            result(
                {"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "hi"}]}}
            ),
        ),
        "http500": (500, json_type, b'{"oops": true}'),
        "garbage": (200, json_type, b"<html>not json</html>"),
        "wrong-id": (200, json_type, result({"task": task}, rid="someone-else")),
        "gzip": (200, {**json_type, "Content-Encoding": "gzip"}, result({"task": task})),
        "huge": (200, json_type, result({"message": {"messageId": "x" * 200_000}})),
        "neither": (200, json_type, result({})),
        "bad-task": (200, json_type, result({"task": {"id": 7, "status": "done"}})),
        "a2a-error": (
            200,
            json_type,
            json.dumps(
                {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32001, "message": "gone"}}
            ).encode(),
        ),
    }
    return answers.get(text, answers["message"])


def scripted_agent(recorder: Recorder | None = None) -> ServerThread:
    recorder = recorder or Recorder()

    def build(url: str) -> ASGIApp:
        card = AgentCard(
            name="Scripted",
            description="Answers SendMessage as its text says.",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
            ],
            capabilities=AgentCapabilities(),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=SKILLS,
        )

        async def answer(request: Request) -> Response:
            status, headers, content = _scripted_answer(json.loads(await request.body()))
            return Response(content, status_code=status, headers=headers)

        routes = [*create_agent_card_routes(card), Route("/", answer, methods=["POST"])]
        return recorder.middleware(Starlette(routes=routes))

    return ServerThread(build).start()
