"""Agents that speak only gRPC, behind the gateway (issue 22): an agent built
with the official a2a-sdk, served by its `GrpcHandler` on 127.0.0.1, its card
(over HTTP, for registration) listing nothing but a GRPC interface. Callers
use the gateway's JSON-RPC door with the SDK's client; the gateway calls the
agent with the SDK's gRPC transport, a token minted for it as metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpc
import grpc.aio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.helpers import new_text_message
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.server.routes import create_agent_card_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    GetTaskRequest,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
    a2a_pb2_grpc,
)
from a2a.utils.errors import TaskNotFoundError
from starlette.applications import Starlette

from registry.tls import client_tls
from tests.support.a2a_agents import SKILLS, WorkerExecutor
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import verify_as_downstream
from tests.support.outages import free_port
from tests.support.servers import ServerThread, stop_all

DONE = TaskState.TASK_STATE_COMPLETED


@dataclass
class Metadata:
    """What the gRPC agent received, call by call."""

    calls: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()


class _Recording(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, seen: Metadata) -> None:
        self.seen = seen

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        with self.seen.lock:
            self.seen.calls.append(
                {k: v for k, v in details.invocation_metadata or () if isinstance(v, str)}
            )
        return await continuation(details)


def grpc_agent(seen: Metadata, grpc_port: int) -> ServerThread:
    """The card over HTTP; the agent itself over gRPC only, started with it."""

    def build(url: str) -> Starlette:
        card = AgentCard(
            name="gRPC Worker",
            description="An agent that speaks A2A over gRPC only.",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(
                    url=f"127.0.0.1:{grpc_port}", protocol_binding="GRPC", protocol_version="1.0"
                )
            ],
            capabilities=AgentCapabilities(streaming=True),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=SKILLS,
        )
        handler = DefaultRequestHandler(
            agent_executor=WorkerExecutor(), task_store=InMemoryTaskStore(), agent_card=card
        )

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            server = grpc.aio.server(interceptors=[_Recording(seen)])
            a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)  # type: ignore[no-untyped-call]
            server.add_insecure_port(f"127.0.0.1:{grpc_port}")
            await server.start()
            yield
            await server.stop(0)

        return Starlette(routes=create_agent_card_routes(card), lifespan=lifespan)

    return ServerThread(build).start()


@dataclass
class Setup:
    gateway: Gateway
    agent: ServerThread
    target: str
    seen: Metadata
    token: str
    other: str

    @contextlib.asynccontextmanager
    async def client(
        self, agent_id: str, token: str, streaming: bool = False
    ) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
            factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
            yield await factory.create_from_url(f"{self.gateway.url}/a2a/{agent_id}")


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    seen = Metadata()
    grpc_port = free_port()
    agent = grpc_agent(seen, grpc_port)
    gateway = start_gateway(tmp_path_factory.mktemp("grpc-up"), module_database_url)
    try:
        with gateway.client() as admin:
            body = {"card_url": agent.url + "/.well-known/agent-card.json", "id": "grpc-worker"}
            assert admin.post("/agents", json=body).status_code == 201
            # The same card, its gRPC target a port nothing listens on.
            card = httpx.get(body["card_url"], verify=client_tls()).json()
            card["supportedInterfaces"][0]["url"] = f"127.0.0.1:{free_port()}"
            dead = {"card": card, "id": "grpc-gone", "resource": "urn:test:grpc-gone"}
            assert admin.post("/agents", json=dead).status_code == 201
        token, other = gateway.token("alice", "work:run"), gateway.token("bob", "work:run")
        yield Setup(gateway, agent, f"127.0.0.1:{grpc_port}", seen, token, other)
    finally:
        stop_all(gateway.server, agent)


def message(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


async def collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [event async for event in stream]


async def test_a_grpc_agent_is_called_with_a_token_minted_for_it(setup: Setup) -> None:
    setup.seen.clear()
    async with setup.client("grpc-worker", setup.token) as client:
        (event,) = await collect(client.send_message(message("hello over grpc")))
    assert event.message.parts[0].text == "echo: hello over grpc"
    (call,) = setup.seen.calls
    scheme, _, minted = call["authorization"].partition(" ")
    assert scheme == "Bearer" and minted != setup.token
    claims = verify_as_downstream(minted, setup.gateway.url, setup.target)
    assert claims["sub"] == "alice"
    assert call["a2a-version"] == "1.0"
    assert setup.token not in str(call), "the caller's token reached the agent"


async def test_tasks_of_a_grpc_agent_are_recorded_for_their_owner(setup: Setup) -> None:
    async with setup.client("grpc-worker", setup.token) as client:
        (event,) = await collect(client.send_message(message("task over grpc")))
        assert event.task.status.state == DONE
        fetched = await client.get_task(GetTaskRequest(id=event.task.id))
        assert fetched.artifacts[0].parts[0].text == "done: over grpc"
    async with setup.client("grpc-worker", setup.other) as client:
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=event.task.id))


async def test_a_grpc_agents_stream_passes_through(setup: Setup) -> None:
    async with setup.client("grpc-worker", setup.token, streaming=True) as client:
        events = await collect(client.send_message(message("slow 0.3")))
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and "artifact_update" in kinds
    assert events[-1].status_update.status.state == DONE


async def test_an_unreachable_grpc_agent_is_an_a2a_error_and_audited(setup: Setup) -> None:
    async with setup.client("grpc-gone", setup.token) as client:
        with pytest.raises(Exception, match="could not be reached"):
            await collect(client.send_message(message("anyone there")))

    def audited() -> list[tuple[str, str]]:
        with setup.gateway.client() as admin:
            items = admin.get("/audit", params={"agent": "grpc-gone"}).json()["items"]
        return [(r["event"], r["outcome"]) for r in items]

    # As for an unreachable HTTP agent: InternalError naming the agent (docs/a2a.md).
    assert await anyio.to_thread.run_sync(audited) == [
        ("a2a.SendMessage", "a2a_error:InternalError")
    ]


@pytest.mark.parametrize(
    ("caps", "said"),
    [
        ({"stream_max_bytes": 300}, "the stream exceeds 300 bytes"),
        ({"stream_idle_seconds": 0.05}, "did not answer"),
    ],
)
def test_a_grpc_agents_stream_is_held_to_the_stream_caps(
    setup: Setup, tmp_path: Any, caps: dict[str, Any], said: str
) -> None:
    # The HTTP pool caps a stream's bytes and silences; a gRPC channel knows
    # nothing of them, so the gateway holds gRPC streams to the same settings.
    capped = start_gateway(tmp_path / "data", None, **caps)
    try:
        with capped.client() as admin:
            card = setup.agent.url + "/.well-known/agent-card.json"
            added = admin.post("/agents", json={"card_url": card, "id": "grpc-worker"})
            assert added.status_code == 201, added.text
        token = capped.token("alice", "work:run")

        async def stream() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
                factory = ClientFactory(ClientConfig(httpx_client=http, streaming=True))
                client = await factory.create_from_url(f"{capped.url}/a2a/grpc-worker")
                await collect(client.send_message(message("slow 2")))

        with pytest.raises(Exception, match=said):
            asyncio.run(stream())
        with capped.client() as admin:
            items = admin.get("/audit", params={"agent": "grpc-worker"}).json()["items"]
        outcomes = [r["outcome"] for r in items if r["event"] == "a2a.SendStreamingMessage"]
        assert len(outcomes) == 1 and outcomes[0] != "ok", outcomes
    finally:
        stop_all(capped.server)
