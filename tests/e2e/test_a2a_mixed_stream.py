"""An agent whose card says A2A 1.0 but whose stream events after the first are
in the 0.3 shape -- LangGraph's server (langgraph-api 0.16) does this -- streams
through the gateway (issue 32.13): the caller, an official a2a-sdk 1.0 client,
gets 1.0 events and the task's end, not -32006 "empty stream event".

The agent is a few lines of Starlette over real HTTP on 127.0.0.1, sending
exactly what such a server sends; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from policies.scopes import ADMIN_SCOPE
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread


def _card(url: str) -> dict[str, Any]:
    return {
        "name": "Mixed",
        "description": "a 1.0 card, 0.3 stream events after the first",
        "version": "1.0.0",
        "supportedInterfaces": [
            {"url": url + "/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "chat", "name": "Chat", "description": "talks", "tags": ["chat"]}],
    }


def _events(request_id: Any) -> list[dict[str, Any]]:
    """As langgraph-api sends them: the task in 1.0, then 0.3 updates."""
    first = {
        "task": {
            "id": "t-1",
            "contextId": "c-1",
            "status": {"state": "TASK_STATE_SUBMITTED"},
        }
    }
    later: list[dict[str, Any]] = [
        {
            "kind": "status-update",
            "taskId": "t-1",
            "contextId": "c-1",
            "status": {"state": "working"},
            "final": False,
        },
        {
            "kind": "artifact-update",
            "taskId": "t-1",
            "contextId": "c-1",
            "artifact": {"artifactId": "a-1", "parts": [{"kind": "text", "text": "hello back"}]},
        },
        {
            "kind": "status-update",
            "taskId": "t-1",
            "contextId": "c-1",
            "status": {"state": "completed"},
            "final": True,
        },
    ]
    return [{"jsonrpc": "2.0", "id": request_id, "result": e} for e in [first, *later]]


def mixed_agent(url: str) -> Starlette:
    async def card(_: Request) -> Response:
        return JSONResponse(_card(url))

    async def rpc(request: Request) -> Response:
        body = await request.json()
        if body.get("method") != "SendStreamingMessage":
            error = {"code": -32601, "message": "only streaming here"}
            return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "error": error})

        async def stream() -> AsyncIterator[str]:
            for event in _events(body.get("id")):
                yield f"data: {json.dumps(event)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/.well-known/agent-card.json", card),
            Route("/", rpc, methods=["POST"]),
        ]
    )


@pytest.fixture
def gateway(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Gateway, str]]:
    agent = ServerThread(mixed_agent).start()
    gw = start_gateway(tmp_path / "data", database_url)
    try:
        with gw.client(gw.token("admin", ADMIN_SCOPE)) as admin:
            body = {"card_url": agent.url + "/.well-known/agent-card.json", "id": "mixed"}
            registered = admin.post("/agents", json=body)
            assert registered.status_code == 201, registered.text
        yield gw, gw.token("alice", "")
    finally:
        gw.stop()
        agent.stop()


async def test_0_3_shaped_events_after_the_first_reach_the_caller_as_1_0(
    gateway: tuple[Gateway, str],
) -> None:
    gw, token = gateway
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=True))
        client = await factory.create_from_url(f"{gw.url}/a2a/mixed")
        message = Message(message_id="m-1", role=Role.ROLE_USER, parts=[Part(text="hello")])
        events = [e async for e in client.send_message(SendMessageRequest(message=message))]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds == ["task", "status_update", "artifact_update", "status_update"], events
    assert events[1].status_update.status.state == TaskState.TASK_STATE_WORKING
    assert events[2].artifact_update.artifact.parts[0].text == "hello back"
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
