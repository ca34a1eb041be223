"""Agents for the tests: one built with the official a2a-sdk, and a plain card host.

`sdk_agent_app` serves its card through the SDK's own card route and answers
A2A JSON-RPC through `DefaultRequestHandler`, so what the gateway fetches is
exactly what a real 1.0 agent publishes. `CardHost` serves arbitrary JSON
documents (0.2/0.3 cards, tampered cards, JWKS) that tests can change live.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from a2a.helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class EchoExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await event_queue.enqueue_event(new_text_message(f"echo: {context.get_user_input()}"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def sdk_card(
    base_url: str,
    *,
    name: str = "Inventory Agent",
    version: str = "1.0.0",
    skills: list[AgentSkill] | None = None,
) -> AgentCard:
    return AgentCard(
        name=name,
        description="Checks stock levels across warehouses.",
        version=version,
        supported_interfaces=[
            AgentInterface(url=base_url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"],
        skills=skills
        or [
            AgentSkill(
                id="check-stock",
                name="Check stock",
                description="Report units on hand for a SKU.",
                tags=["inventory", "warehouse"],
                examples=["How many X-100 widgets are left?"],
            )
        ],
    )


@dataclass
class CardSource:
    """The card an SDK agent serves; tests swap it to simulate a new version."""

    card: AgentCard
    signer: Callable[[AgentCard], AgentCard] | None = None

    async def current(self, _: AgentCard) -> AgentCard:
        served = AgentCard()
        served.CopyFrom(self.card)
        return self.signer(served) if self.signer else served


def sdk_agent_app(source: CardSource) -> Starlette:
    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(), task_store=InMemoryTaskStore(), agent_card=source.card
    )
    routes = create_agent_card_routes(source.card, card_modifier=source.current)
    routes += create_jsonrpc_routes(handler, rpc_url="/")
    return Starlette(routes=routes)


@dataclass
class CardHost:
    """Serves JSON documents by path; ``documents[path] = (status, body)``."""

    documents: dict[str, tuple[int, Any]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0  # seconds each answer takes
    in_flight: int = 0
    max_in_flight: int = 0

    def app(self) -> Starlette:
        async def serve(request: Request) -> Response:
            path = request.url.path
            self.hits[path] = self.hits.get(path, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.delay:
                    await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            if path not in self.documents:
                return JSONResponse({"error": "not found"}, status_code=404)
            status, body = self.documents[path]
            return JSONResponse(copy.deepcopy(body), status_code=status)

        return Starlette(routes=[Route("/{path:path}", serve, methods=["GET"])])


def v03_card(base_url: str, *, name: str = "Legacy CRM Agent") -> dict[str, Any]:
    """An A2A 0.3 card as agents in the field publish it."""
    return {
        "protocolVersion": "0.3.0",
        "name": name,
        "description": "Looks up customers in the CRM.",
        "url": base_url + "/a2a",
        "preferredTransport": "JSONRPC",
        "additionalInterfaces": [{"url": base_url + "/rest", "transport": "HTTP+JSON"}],
        "version": "2.4.1",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "security": [{"bearer": []}],
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["application/json"],
        "skills": [
            {
                "id": "lookup-customer",
                "name": "Lookup customer",
                "description": "Find a customer record by email.",
                "tags": ["crm", "customers"],
                "inputModes": ["application/json"],
            }
        ],
        "supportsAuthenticatedExtendedCard": True,
    }


def v02_card(base_url: str) -> dict[str, Any]:
    """An A2A 0.2 card: no protocolVersion, served at /.well-known/agent.json."""
    return {
        "name": "Old Billing Agent",
        "description": "Issues invoices.",
        "url": base_url + "/",
        "version": "0.9",
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {
                "id": "invoice",
                "name": "Invoice",
                "description": "Create an invoice.",
                "tags": ["billing"],
            }
        ],
    }
