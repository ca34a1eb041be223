"""A chain across vendors, each hop through Switchboard: a user asks a Google
ADK agent (concierge), which delegates to a pydantic-ai agent (pricing),
which calls an MCP server's tool (calc) -- the agents calling onward with the
project's `TokenExchangeAuth` (RFC 8693 with their own credentials), which no
framework does by itself.

Each hop gets its own minted token: the same user (`sub`), the actor chain
(`act`) one agent longer at every hop, audience-bound, scopes never wider
than the user's; the user's own token reaches none of them. Every hop --
the calls and the exchanges -- is in the audit under the user's one trace.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.interop.processes import PENDING, framework_agent, settled_task
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import verify_as_downstream
from tests.support.mcp_servers import upstream_server
from tests.support.servers import stop_all

pytestmark = pytest.mark.interop
USER_SCOPES = "crm:read crm:write"
CARD = "/.well-known/agent-card.json"


def _depth(claims: dict[str, Any]) -> list[str]:
    """The actor chain, nearest first."""
    chain, act = [], claims.get("act")
    while isinstance(act, dict):
        chain.append(str(act.get("sub")))
        act = act.get("act")
    return chain


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    started = start_gateway(tmp_path / "data", None)
    try:
        yield started
    finally:
        stop_all(started.server)


def test_an_adk_agent_delegates_to_a_pydantic_ai_agent_that_calls_an_mcp_tool(
    gateway: Gateway, tmp_path: Path
) -> None:
    calc, calc_recorder, _ = upstream_server()
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    onward = {"SWITCHBOARD_URL": gateway.url}
    pricing_env = {
        **onward,
        "AGENT_ID": "pricing",
        "SECRET_FILE": str(secrets_dir / "pricing"),
        "TARGET_ID": "calc",
    }
    concierge_env = {
        **onward,
        "AGENT_ID": "concierge",
        "SECRET_FILE": str(secrets_dir / "concierge"),
        "TARGET_ID": "pricing",
    }
    try:
        with (
            framework_agent(
                "pydantic_ai", tmp_path, CARD, name="chain_server.py", env=pricing_env
            ) as pricing,
            framework_agent(
                "google_adk", tmp_path, CARD, name="chain_server.py", env=concierge_env
            ) as concierge,
            gateway.client() as admin,
        ):
            mcp = {
                "name": "calc",
                "id": "calc",
                "url": calc.url + "/mcp",
                "credential": {"type": "token_exchange"},
            }
            assert admin.post("/mcp-servers", json=mcp).status_code == 201
            resources = {}
            for agent_id, agent in (("pricing", pricing), ("concierge", concierge)):
                registered = admin.post("/agents", json={"card_url": agent.url, "id": agent_id})
                assert registered.status_code == 201, registered.text
                resources[agent_id] = registered.json()["resource"]
                issued = admin.post(
                    f"/agents/{agent_id}/credentials", json={"method": "client_secret"}
                )
                assert issued.status_code in (200, 201), issued.text
                (secrets_dir / agent_id).write_text(issued.json()["client_secret"])
            calc_resource = admin.get("/mcp-servers/calc").json()["resource"]

            trace_id = secrets.token_hex(16)
            user_token = gateway.token("alice", USER_SCOPES)
            text = _ask(gateway, user_token, trace_id, "what is 2 plus 40?")
            assert "concierge relays: pydantic-ai computed:" in text, text
            assert "42" in text, text

            # Hop 1: the user's call to concierge -- a token for concierge.
            first = _only_bearer(concierge.calls())
            claims = verify_as_downstream(first, gateway.url, resources["concierge"])
            assert claims["sub"] == "alice"
            assert "concierge" not in _depth(claims)
            # Hop 2: concierge, through the gateway, to pricing: one actor more.
            second = _only_bearer(pricing.calls())
            claims2 = verify_as_downstream(second, gateway.url, resources["pricing"])
            assert claims2["sub"] == "alice"
            assert _depth(claims2)[0] == "concierge"
            assert len(_depth(claims2)) == len(_depth(claims)) + 1
            # Hop 3: pricing, through the gateway, to the MCP server.
            tool_calls = [c for c in calc_recorder.calls() if b"tools/call" in (c.body or b"")]
            assert len(tool_calls) == 1
            third = tool_calls[0].bearer
            assert third is not None
            claims3 = verify_as_downstream(third, gateway.url, calc_resource)
            assert claims3["sub"] == "alice"
            assert _depth(claims3)[:2] == ["pricing", "concierge"]
            # Scopes only shrink along the chain; none is the user's token.
            user = set(USER_SCOPES.split())
            scopes = [set(c.get("scope", "").split()) for c in (claims, claims2, claims3)]
            assert scopes[0] <= user and scopes[1] <= scopes[0] and scopes[2] <= scopes[1]
            for seen in (*concierge.seen(), *pricing.seen()):
                assert user_token not in (seen.authorization or "") + seen.body
            for call in calc_recorder.calls():
                assert not call.contains(user_token)

            # Every hop, calls and exchanges, under the user's one trace.
            traced = admin.get("/audit", params={"trace": trace_id}).json()["items"]
            assert traced and all(r["trace_id"] == trace_id for r in traced)
            hops = {(r["event"], r.get("target"), r.get("client_id")) for r in traced}
            assert {
                ("token_exchange", "pricing", "concierge"),  # concierge asks for a token ...
                ("a2a.SendMessage", "pricing", "concierge"),  # ... and calls pricing with it
                ("token_exchange", "calc", "pricing"),
                ("mcp", "calc", "pricing"),
            } <= hops, hops
            assert any(e == "a2a.SendMessage" and t == "concierge" for e, t, _ in hops), hops
    finally:
        stop_all(calc)


def _only_bearer(calls: list[Any]) -> str:
    bearers = {c.bearer for c in calls}
    assert len(bearers) == 1 and None not in bearers, bearers
    token: str = bearers.pop()
    return token


def _ask(gateway: Gateway, token: str, trace_id: str, text: str) -> str:
    """The user's question to concierge, under ``trace_id``; the answer's text."""
    headers = {
        "Authorization": f"Bearer {token}",
        "A2A-Version": "1.0",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
    url = f"{gateway.url}/a2a/concierge"
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    answer = httpx.post(url, json=body, headers=headers, timeout=120, verify=client_tls()).json()
    assert "error" not in answer, answer
    result = answer["result"]
    task = result.get("task")
    if task is not None and task["status"]["state"] in PENDING:
        task = settled_task(url, headers, task["id"], seconds=60)
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(task if task is not None else result)
    return " ".join(found)
