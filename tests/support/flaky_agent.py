"""A minimal A2A 1.0 JSON-RPC agent that fails on demand and counts its calls.

`FlakyAgent.fail_next` answers the next N calls with `status` (503 unless
set); `down = True` answers every call so until cleared; `a2a_error = True`
answers with a JSON-RPC error of the agent's own. Otherwise it answers
`SendMessage` with one message, "from <name>"; one built with ``streams``
answers `SendStreamingMessage` with that message as its one event.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from a2a.server.routes import create_agent_card_routes
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.tls import client_tls
from tests.support.servers import ServerThread


@dataclass
class FlakyAgent:
    name: str
    server: ServerThread | None = None
    calls: int = 0
    fail_next: int = 0
    down: bool = False
    status: int = 503
    a2a_error: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def card(self) -> dict[str, object]:
        import httpx

        card: dict[str, object] = httpx.get(
            self.url + "/.well-known/agent-card.json", verify=client_tls()
        ).json()
        return card

    def _answer(self, body: dict[str, object]) -> Response:
        with self.lock:
            self.calls += 1
            failing = self.down or self.fail_next > 0
            if self.fail_next > 0:
                self.fail_next -= 1
        if failing:
            return Response(b'{"busy": true}', status_code=self.status)
        outcome: dict[str, object]
        if self.a2a_error:
            outcome = {"error": {"code": -32001, "message": "no such task, says the agent"}}
        else:
            parts = [{"text": f"from {self.name}"}]
            outcome = {
                "result": {"message": {"messageId": "a", "role": "ROLE_AGENT", "parts": parts}}
            }
        answer = json.dumps({"jsonrpc": "2.0", "id": body.get("id"), **outcome})
        if body.get("method") == "SendStreamingMessage":
            return Response(f"data: {answer}\n\n", media_type="text/event-stream")
        return Response(answer, media_type="application/json")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def flaky_agent(name: str, *, streams: bool = False) -> FlakyAgent:
    agent = FlakyAgent(name)

    def build(url: str) -> Starlette:
        card = AgentCard(
            name=name,
            description="Fails on demand.",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
            ],
            capabilities=AgentCapabilities(streaming=streams),
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["text/plain"],
            skills=[AgentSkill(id="work", name="Work", description="Works.", tags=["t"])],
        )

        async def answer(request: Request) -> Response:
            return agent._answer(json.loads(await request.body()))

        routes = [*create_agent_card_routes(card), Route("/", answer, methods=["POST"])]
        return Starlette(routes=routes)

    agent.server = ServerThread(build).start()
    return agent
