"""A request carries one credential, on every door: two `Authorization`
lines, or `Authorization` and `X-Api-Key` naming different credentials, are
refused (401, `error="invalid_request"`), never one of them chosen -- over
real HTTP to the REST API, `/a2a` (JSON-RPC) and `/mcp`, and the token
endpoint's client authentication (400 `invalid_request`, RFC 6749 §5.2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.servers import stop_all

POLICY = """\
agents:
  worker:
    require: [work:run]
    grant: [work:run]
"""
SCOPES = "work:run"
Lines = list[tuple[str, str]]


@dataclass
class Deployed:
    gateway: Gateway
    seen: Recorder
    alice: str
    bob: str


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    seen = Recorder()
    worker = worker_agent(seen)
    gateway = start_gateway(tmp_path_factory.mktemp("one") / "data", None, policy=POLICY)
    try:
        with gateway.client() as admin:
            card_url = worker.url + "/.well-known/agent-card.json"
            assert admin.post("/agents", json={"card_url": card_url, "id": "worker"}).is_success
        alice, bob = gateway.token("alice", SCOPES), gateway.token("bob", SCOPES)
        yield Deployed(gateway, seen, alice, bob)
    finally:
        stop_all(gateway.server, worker)


def rest(gateway: Gateway, headers: Lines) -> httpx.Response:
    return httpx.get(f"{gateway.url}/agents", headers=headers, verify=client_tls(), timeout=30)


def a2a(gateway: Gateway, headers: Lines) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "SendMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "x"}]}},
    }
    return httpx.post(
        f"{gateway.url}/a2a/worker",
        json=body,
        headers=[("A2A-Version", "1.0"), *headers],
        verify=client_tls(),
        timeout=30,
    )


def mcp(gateway: Gateway, headers: Lines) -> httpx.Response:
    # The 2026-07-28 revision: one request, no session to open first.
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    return httpx.post(
        f"{gateway.url}/mcp",
        json=body,
        headers=[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
            *headers,
        ],
        verify=client_tls(),
        timeout=30,
    )


DOORS = {"rest": rest, "a2a": a2a, "mcp": mcp}


@pytest.mark.parametrize("door", DOORS)
def test_two_credentials_are_refused_on_every_door(deployed: Deployed, door: str) -> None:
    send = DOORS[door]
    alice, bob = f"Bearer {deployed.alice}", f"Bearer {deployed.bob}"
    assert send(deployed.gateway, [("Authorization", alice)]).status_code == 200
    calls = len(deployed.seen.calls())
    refused: dict[str, tuple[Lines, str]] = {
        "two users": (
            [("Authorization", alice), ("Authorization", bob)],
            "send one Authorization header",
        ),
        "one user twice": (
            [("Authorization", alice), ("Authorization", alice)],
            "send one Authorization header",
        ),
        "an empty second line": (
            [("Authorization", alice), ("Authorization", "")],
            "send one Authorization header",
        ),
        "a token and another key": (
            [("Authorization", alice), ("X-Api-Key", "sk-sb-" + "a" * 12 + "_" + "b" * 43)],
            "Authorization and X-Api-Key carry different credentials",
        ),
    }
    for what, (headers, detail) in refused.items():
        answer = send(deployed.gateway, headers)
        assert answer.status_code == 401, (what, answer.text)
        assert answer.json()["detail"] == detail, what
        assert 'error="invalid_request"' in answer.headers["www-authenticate"], what
    assert len(deployed.seen.calls()) == calls, "a refused request reached the agent"


def test_the_token_endpoint_takes_one_authorization(deployed: Deployed) -> None:
    basic = "Basic " + "YTpi"  # a:b
    answer = httpx.post(
        f"{deployed.gateway.url}/oauth/token",
        content="grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", basic),
            ("Authorization", basic),
        ],
        verify=client_tls(),
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": "send one Authorization header",
    }
