"""A task whose answer streams in chunks keeps every chunk in its record,
once: the gateway writes a stream's chunks a few at a time
(`gateway.delegation.held_updates`), and neither a caller who goes away
in the middle nor a `GetTask` in the middle changes what the record holds.

Over real HTTP on 127.0.0.1 (`tests.support.chunk_agent`), SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState
from a2a.utils.errors import InvalidAgentResponseError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.storage.tables import a2a_tasks
from registry.tls import client_tls
from tests.support.chunk_agent import FIRST, TASK_ID, ChunkAgent
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import stop_all
from tests.support.waiting import wait_for

AGENT = "chunks"


@dataclass
class Setup:
    gateway: Gateway
    agent: ChunkAgent
    token: str

    @asynccontextmanager
    async def client(self, binding: str = "JSONRPC") -> AsyncIterator[Client]:
        """An SDK client of the gateway's, over the door's ``binding``."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
            config = ClientConfig(
                httpx_client=http, streaming=True, supported_protocol_bindings=[binding]
            )
            yield await ClientFactory(config).create_from_url(f"{self.gateway.url}/a2a/{AGENT}")

    def recorded(self) -> list[dict[str, Any]]:
        """The gateway's own record of the caller's tasks (`ListTasks`)."""
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "ListTasks",
            "params": {"includeArtifacts": True},
        }
        headers = {"Authorization": f"Bearer {self.token}", "A2A-Version": "1.0"}
        answer = httpx.post(
            f"{self.gateway.url}/a2a/{AGENT}", json=body, headers=headers, verify=client_tls()
        )
        tasks: list[dict[str, Any]] = answer.json()["result"].get("tasks", [])
        return tasks

    async def stored(self) -> list[str]:
        """The chunks in the task's row, as written (no read through the gateway,
        which would write what it holds first)."""
        engine = create_async_engine(self.gateway.settings.effective_database_url)
        try:
            async with engine.connect() as conn:
                task = await conn.scalar(
                    select(a2a_tasks.c.task).where(
                        a2a_tasks.c.agent_id == AGENT, a2a_tasks.c.task_id == TASK_ID
                    )
                )
        finally:
            await engine.dispose()
        return _chunks(task or {})


def _chunks(task: dict[str, Any]) -> list[str]:
    return [p["text"] for a in task.get("artifacts", []) for p in a.get("parts", [])]


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    agent = ChunkAgent().start()
    assert agent.server is not None
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        with gateway.client() as admin:
            body = {"card_url": agent.server.url + "/.well-known/agent-card.json", "id": AGENT}
            registered = admin.post("/agents", json=body)
            assert registered.status_code == 201, registered.text
        yield Setup(gateway, agent, gateway.token("alice", ""))
    finally:
        agent.release.set()
        stop_all(gateway.server, agent.server)


def _hello() -> SendMessageRequest:
    message = Message(message_id="m-1", role=Role.ROLE_USER, parts=[Part(text="hello")])
    return SendMessageRequest(message=message)


async def test_a_caller_gone_mid_stream_loses_no_chunk_the_gateway_relayed(setup: Setup) -> None:
    chunks: list[str] = []
    async with setup.client() as client:
        stream = client.send_message(_hello())
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for event in stream:
                if event.HasField("artifact_update"):
                    chunks += [p.text for p in event.artifact_update.artifact.parts]
                if len(chunks) == FIRST:
                    break  # the caller goes away; the agent is still working
    assert chunks == ["c0", "c1", "c2"]

    def kept() -> list[str] | None:
        stored = asyncio.run(setup.stored())
        return stored if stored == chunks else None

    await anyio.to_thread.run_sync(lambda: wait_for(kept, what="every chunk relayed, recorded"))

    def audited() -> list[dict[str, Any]] | None:
        with setup.gateway.client() as admin:
            items: list[dict[str, Any]] = admin.get("/audit", params={"agent": AGENT}).json()[
                "items"
            ]
        return items or None

    # The call held open by the door ends with the stream's one record (no
    # other of its trace: the door's held call records only an end no one did).
    records = await anyio.to_thread.run_sync(lambda: wait_for(audited, what="the record"))
    assert [r["event"] for r in records] == ["a2a.SendStreamingMessage"], records


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
async def test_get_task_mid_stream_then_the_end_record_every_chunk_once(
    setup: Setup, binding: str
) -> None:
    chunks: list[str] = []
    async with setup.client(binding) as client, setup.client(binding) as other:
        async for event in client.send_message(_hello()):
            if event.HasField("artifact_update"):
                chunks += [p.text for p in event.artifact_update.artifact.parts]
            if len(chunks) == FIRST and not setup.agent.release.is_set():
                # Mid-stream: the agent's task as it stands, through the gateway.
                task = await other.get_task(GetTaskRequest(id=TASK_ID))
                assert [p.text for p in task.artifacts[0].parts] == ["c0", "c1", "c2"]
                (recorded,) = await anyio.to_thread.run_sync(setup.recorded)
                assert _chunks(recorded) == ["c0", "c1", "c2"]
                setup.agent.release.set()
    assert chunks == ["c0", "c1", "c2", "c3"]
    (recorded,) = await anyio.to_thread.run_sync(setup.recorded)
    assert recorded["status"]["state"] == TaskState.Name(TaskState.TASK_STATE_COMPLETED)
    assert _chunks(recorded) == ["c0", "c1", "c2", "c3"]


async def test_a_stream_naming_someone_elses_task_fails_and_writes_nothing(setup: Setup) -> None:
    """The agent gives bob's stream the id of alice's task: its first event
    is refused before bob hears it (the record the stream writes first
    checks whose task it is), and alice's record is untouched."""
    setup.agent.release.set()
    async with setup.client() as client:
        async for _ in client.send_message(_hello()):
            pass
    (alices,) = await anyio.to_thread.run_sync(setup.recorded)
    assert _chunks(alices) == ["c0", "c1", "c2", "c3"]
    stored_before = await setup.stored()

    # The agent starts over with the same task id, now for bob.
    setup.agent.sent.clear()
    setup.agent.state = "TASK_STATE_SUBMITTED"
    bobs = await anyio.to_thread.run_sync(setup.gateway.token, "bob", "")
    bob = Setup(setup.gateway, setup.agent, bobs)
    seen: list[str] = []

    async def follow(client: Client) -> None:
        async for event in client.send_message(_hello()):
            seen.append(str(event.WhichOneof("payload")))

    async with bob.client() as client:
        with pytest.raises(InvalidAgentResponseError, match="already gave someone else"):
            await follow(client)
    assert seen == []
    assert await anyio.to_thread.run_sync(bob.recorded) == []
    (still,) = await anyio.to_thread.run_sync(setup.recorded)
    assert still == alices
    assert await setup.stored() == stored_before
