"""An agent whose card says A2A 1.0 but whose stream events after the first are
in 0.3's layout -- LangGraph's server does this (docs/interop.md) -- streams
through the gateway (issue 32.13): an official a2a-sdk 1.0 client gets 1.0
events, and the gateway records the task's end; an event that is neither
shape is refused by name (-32006), not as an "empty stream event"; a 1.0
event of the wrong type (read by `adapters.a2a_common_events` or not) is
refused as the SDK's parse refuses it.

Over real HTTP on 127.0.0.1 (`tests.support.mixed_stream_agent`), SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.types import (
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)
from a2a.utils.errors import InvalidAgentResponseError

from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, verify_as_downstream
from tests.support.mixed_stream_agent import FILE_URL, SAYS, mixed_stream_agent
from tests.support.servers import ServerThread, stop_all

DIALECTS = ("langgraph", "0.3", "neither", "malformed")


@dataclass
class Setup:
    gateway: Gateway
    agents: dict[str, tuple[ServerThread, Recorder]]
    token: str

    @asynccontextmanager
    async def client(self, dialect: str) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
            factory = ClientFactory(ClientConfig(httpx_client=http, streaming=True))
            yield await factory.create_from_url(f"{self.gateway.url}/a2a/{_id(dialect)}")


def _id(dialect: str) -> str:
    return "mixed-" + dialect.replace(".", "")


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    agents = {}
    for dialect in DIALECTS:
        recorder = Recorder()
        agents[dialect] = (mixed_stream_agent(dialect, recorder), recorder)
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        with gateway.client() as admin:
            for dialect, (agent, _) in agents.items():
                body = {"card_url": agent.url + "/.well-known/agent-card.json", "id": _id(dialect)}
                registered = admin.post("/agents", json=body)
                assert registered.status_code == 201, registered.text
        yield Setup(gateway, agents, gateway.token("alice", ""))
    finally:
        stop_all(gateway.server, *(agent for agent, _ in agents.values()))


def _hello() -> SendMessageRequest:
    message = Message(message_id="m-1", role=Role.ROLE_USER, parts=[Part(text="hello")])
    return SendMessageRequest(message=message)


@pytest.mark.parametrize("dialect", ["langgraph", "0.3"])
async def test_0_3_shaped_events_after_the_first_reach_the_caller_as_1_0(
    setup: Setup, dialect: str
) -> None:
    async with setup.client(dialect) as client:
        events: list[StreamResponse] = [e async for e in client.send_message(_hello())]
        kinds = [e.WhichOneof("payload") for e in events]
        assert kinds == ["task", "status_update", "artifact_update", "status_update"], events
        working = events[1].status_update
        assert working.task_id == "mixed-task"
        assert working.status.state == TaskState.TASK_STATE_WORKING
        assert working.status.message.role == Role.ROLE_AGENT
        assert working.status.message.parts[0].text == f"{SAYS} hello"
        parts = events[2].artifact_update.artifact.parts
        assert parts[0].text == f"{SAYS} hello"
        if dialect == "0.3":
            assert parts[1].url == FILE_URL
        assert events[3].status_update.status.state == TaskState.TASK_STATE_COMPLETED
        # The gateway followed the task to its end, from the translated events.
        listed = await client.list_tasks(ListTasksRequest())
    assert [(t.id, t.status.state) for t in listed.tasks] == [
        ("mixed-task", TaskState.TASK_STATE_COMPLETED)
    ]
    (call,) = setup.agents[dialect][1].calls()
    assert call.bearer is not None and call.bearer != setup.token
    claims = verify_as_downstream(
        call.bearer, setup.gateway.url, setup.agents[dialect][0].url + "/"
    )
    assert claims["sub"] == "alice"


async def _refused_stream(setup: Setup, dialect: str) -> str:
    """Stream from ``mixed-<dialect>`` until the gateway refuses an event:
    the refusal, after the task and one status update, audited as the
    agent's invalid answer. Returns what the refusal said."""
    seen: list[StreamResponse] = []

    async def follow(client: Client) -> None:
        async for event in client.send_message(_hello()):
            seen.append(event)

    async with setup.client(dialect) as client:
        with pytest.raises(InvalidAgentResponseError) as refused:
            await follow(client)
    assert [e.WhichOneof("payload") for e in seen] == ["task", "status_update"]
    said = str(refused.value)
    assert f"agent mixed-{dialect} sent an invalid answer" in said, said

    def audited() -> list[str]:
        with setup.gateway.client() as admin:
            items = admin.get("/audit", params={"agent": f"mixed-{dialect}"}).json()["items"]
        return [r["outcome"] for r in items if r["event"] == "a2a.SendStreamingMessage"]

    outcomes = await anyio.to_thread.run_sync(audited)
    assert outcomes == ["a2a_error:InvalidAgentResponseError"], outcomes
    return said


async def test_an_event_of_neither_shape_is_refused_by_name(setup: Setup) -> None:
    said = await _refused_stream(setup, "neither")
    assert "neither A2A 1.0's shape nor 0.3's (members: contextId, kind, percent, taskId)" in said


async def test_a_1_0_event_of_the_wrong_type_is_refused_as_invalid(setup: Setup) -> None:
    await _refused_stream(setup, "malformed")
