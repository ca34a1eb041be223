"""Agents that serve several skills and say which one they ran.

An agent serving several skills reads which one a message is for from
metadata -- here, as the gateway's own `/mcp` bridge writes it, from the
message's `metadata.skill`. `SkillExecutor` answers ``ran <that skill>``
(``ran -`` when none is named) and what the request-level `metadata.skill`
said, so a test sees which skill the agent would have run; the recorder sees
the bytes. Sent ``ask``, it starts a task of that skill that waits for input;
the next message on the task continues the task's skill, whatever that
message names, as agents do: ``continued <task's skill> (message says ...)``. Served as an A2A 1.0 JSON-RPC agent, a 1.0 HTTP+JSON-only agent,
or a 0.3-only JSON-RPC agent (`skill_agent`).

`hook_server` is a REST webhook (a gateway-run agent's upstream) that
records the bodies it gets. `upstream_skills` reads what crossed the wire: every place of the forwarded
request that names a skill, whatever the agent's dialect.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.support.inspecting import Recorder, Seen
from tests.support.servers import ServerThread

SKILL_IDS = ("read", "adminop")
Kind = Literal["jsonrpc", "rest", "legacy"]


def _said(metadata: Any) -> str:
    if metadata is None or "skill" not in metadata:
        return "-"
    value = metadata["skill"]
    return value if isinstance(value, str) else repr(value)


class SkillExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        params = getattr(context, "_params", None)
        ran = _said(message.metadata if message is not None else None)
        asked = _said(params.metadata if params is not None else None)
        current = context.current_task
        if current is not None and current.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            # A task continues its own skill, whatever this message names.
            started = _said(current.metadata)
            updater = TaskUpdater(event_queue, current.id, current.context_id)
            said = f"continued {started} (message says {ran}, request says {asked})"
            await updater.add_artifact([new_text_part(said)], name="answer")
            await updater.complete()
            return
        if message is not None and context.get_user_input() == "ask":
            task = new_task_from_user_message(message)
            task.metadata.update({"skill": ran})
            await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.requires_input(new_text_message(f"{ran}: which one?"))
            return
        await event_queue.enqueue_event(new_text_message(f"ran {ran} (request says {asked})"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def _skills() -> list[AgentSkill]:
    return [
        AgentSkill(id=s, name=s, description=f"The {s} skill.", tags=["test"]) for s in SKILL_IDS
    ]


def skill_card(base_url: str, name: str, kind: Kind, *, streaming: bool = False) -> AgentCard:
    binding = "HTTP+JSON" if kind == "rest" else "JSONRPC"
    url = base_url if kind == "rest" else base_url + "/"
    return AgentCard(
        name=name,
        description=f"{name}: reads the skill from metadata.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding=binding, protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=_skills(),
    )


def _legacy_card(base_url: str, name: str) -> dict[str, Any]:
    return {
        "protocolVersion": "0.3.0",
        "name": name,
        "description": f"{name}: a 0.3-only agent that reads the skill from metadata.",
        "url": base_url + "/",
        "preferredTransport": "JSONRPC",
        "version": "0.3.0",
        "capabilities": {"streaming": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {"id": s, "name": s, "description": f"The {s} skill.", "tags": ["test"]}
            for s in SKILL_IDS
        ],
    }


def skill_agent(
    kind: Kind, recorder: Recorder, name: str = "Ops", *, streaming: bool = False
) -> ServerThread:
    """An SDK agent with the skills `read` and `adminop`, of the given kind
    (a 1.0 one streams when asked to)."""

    def build(url: str) -> ASGIApp:
        if kind == "legacy":
            from a2a.client.card_resolver import parse_agent_card

            raw = _legacy_card(url, name)
            card = parse_agent_card(json.loads(json.dumps(raw)))
        else:
            card = skill_card(url, name, kind, streaming=streaming)
        handler = DefaultRequestHandler(
            agent_executor=SkillExecutor(), task_store=InMemoryTaskStore(), agent_card=card
        )
        if kind == "legacy":

            async def serve_card(_: Request) -> JSONResponse:
                return JSONResponse(raw)

            routes: list[Any] = [
                Route("/.well-known/agent-card.json", serve_card),
                *create_jsonrpc_routes(handler, rpc_url="/", enable_v0_3_compat=True),
            ]
        elif kind == "rest":
            routes = create_agent_card_routes(card) + create_rest_routes(handler)
        else:
            routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/")
        return recorder.middleware(Starlette(routes=routes))

    return ServerThread(build).start()


def upstream_skills(seen: Seen) -> dict[str, Any]:
    """{place: value} for every place of a forwarded SendMessage that names a
    skill: JSON-RPC (1.0 or 0.3) `params`, or an HTTP+JSON body."""
    body = json.loads(seen.body)
    params = body.get("params", {}) if "jsonrpc" in body else body
    found: dict[str, Any] = {}
    holders = [("params.metadata", params.get("metadata"))]
    for key in ("message", "request"):
        message = params.get(key)
        if isinstance(message, dict):
            holders.append((f"params.{key}.metadata", message.get("metadata")))
    for where, metadata in holders:
        if isinstance(metadata, dict) and "skill" in metadata:
            found[where] = metadata["skill"]
    return found


@dataclass
class Hook:
    """A REST webhook (a gateway-run agent's upstream) that records its bodies."""

    server: ServerThread
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies)


def hook_server() -> Hook:
    hook = Hook(None)  # type: ignore[arg-type]

    async def receive(request: Request) -> JSONResponse:
        body = await request.json()
        with hook.lock:
            hook.bodies.append(body)
        return JSONResponse(f"webhook ran {body.get('skill')}")

    hook.server = ServerThread(
        lambda _url: Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    ).start()
    return hook
