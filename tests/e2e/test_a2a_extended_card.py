"""An agent's extended card through the gateway shows the caller only the
skills the caller may call, like every other listing of skills
(tests/e2e/test_skill_listings.py); its public card is its own description.

The agent answers `GetExtendedAgentCard` with two skills, one of which the
policy reserves to a scope. Real HTTP on 127.0.0.1, SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from a2a.server.routes import create_agent_card_routes
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread, stop_all

POLICY = "agents:\n  desk:\n    skills:\n      secret:\n        require: [desk:secret]\n"


def _card(url: str, *skills: str) -> AgentCard:
    return AgentCard(
        name="Desk",
        description="a desk with an extended card",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(extended_agent_card=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id=s, name=s, description=s, tags=["test"]) for s in skills],
    )


def _desk(url: str) -> Starlette:
    async def answer(request: Request) -> Response:
        body = json.loads(await request.body())
        assert body["method"] == "GetExtendedAgentCard"
        card = MessageToDict(_card(url, "open", "secret"))
        result = {"jsonrpc": "2.0", "id": body["id"], "result": card}
        return Response(json.dumps(result), media_type="application/json")

    return Starlette(
        routes=[
            *create_agent_card_routes(_card(url, "open", "secret")),
            Route("/", answer, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("extended")
    (tmp / "policy.yaml").write_text(POLICY)
    desk = ServerThread(_desk).start()
    gateway = start_gateway(tmp / "data", None, policy_file=tmp / "policy.yaml")
    try:
        with gateway.client() as admin:
            card = desk.url + "/.well-known/agent-card.json"
            added = admin.post("/agents", json={"card_url": card, "id": "desk"})
            assert added.status_code == 201, added.text
        yield gateway
    finally:
        stop_all(gateway.server, desk)


def _extended(gateway: Gateway, scopes: str) -> list[str]:
    token = gateway.token(f"user-{scopes or 'none'}", scopes)
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard", "params": {}}
    answer: dict[str, Any] = httpx.post(
        f"{gateway.url}/a2a/desk",
        json=body,
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    ).json()
    return [skill["id"] for skill in answer["result"]["skills"]]


def test_the_extended_card_shows_only_the_skills_the_caller_may_call(gateway: Gateway) -> None:
    assert _extended(gateway, "") == ["open"]
    assert _extended(gateway, "desk:secret") == ["open", "secret"]
    # The public card is the agent's own description, for discovery (A2A 1.0 §8).
    public = httpx.get(
        f"{gateway.url}/a2a/desk/.well-known/agent-card.json", verify=client_tls()
    ).json()
    assert [s["id"] for s in public["skills"]] == ["open", "secret"]
