"""The interoperability matrix (docs/interop.md): agents and clients built
with real frameworks, each installed from PyPI into an environment of its own
(`tests.interop.venvs`) and run with a deterministic model, through a real
gateway on 127.0.0.1.

* A2A servers behind the gateway: registered by their card's URL, called at
  `/a2a/{id}` (SendMessage, GetTask); what each received is checked: a token
  the gateway minted for it (`sub` the user, `aud` its resource, `act`,
  `scope`), never the caller's.
* A2A clients in front of it: the framework's own client calls an SDK agent
  through the gateway's front door with a bearer token, reading the gateway's
  re-signed card.
* MCP clients on `/mcp`: each lists the tools and calls an upstream MCP tool
  and an agent's skill with a bearer token.

`make interop` runs every framework; the test run (and CI) runs the subset in
`CI_SUBSET` unless ``SWITCHBOARD_INTEROP=all``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.interop.processes import framework_agent, run_client, settled_task
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, agent_card, inspecting_agent, verify_as_downstream
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all

pytestmark = pytest.mark.interop


@dataclass(frozen=True)
class A2AServer:
    framework: str
    card_path: str  # where its card is served
    says: str  # what its deterministic model answers before the user's text
    # Also streamed through the gateway (SendStreamingMessage), for a server
    # whose stream once did not pass (LangGraph's: 0.3 events after the first).
    streams: bool = False


A2A_SERVERS = [
    A2AServer("pydantic_ai", "/.well-known/agent-card.json", "pydantic-ai says:"),
    A2AServer("strands", "/.well-known/agent-card.json", "strands says:"),
    A2AServer("google_adk", "/.well-known/agent-card.json", "adk says:"),
    A2AServer("ag2", "/.well-known/agent-card.json", "ag2 says:"),
    # Behind a shim routing each method to Agno's own route (docs/interop.md).
    A2AServer("agno", "/.well-known/agent-card.json", "agno says:"),
    A2AServer("beeai", "/.well-known/agent-card.json", "beeai says:"),
    # CrewAI's card and executor on the a2a-sdk's own app (it ships no server).
    A2AServer("crewai", "/.well-known/agent-card.json", "crewai says:"),
    # langgraph-api's in-memory server (a folder named `langgraph` would join
    # the `langgraph` namespace package, hence the name).
    A2AServer("langgraph_server", "/.well-known/agent-card.json", "langgraph says:", True),
]
# The client's extra arguments: an a2a-sdk 0.3 client (Strands) reads the 0.3
# form of the gateway's card, at agent.json (agent-card.json is pure 1.0,
# which the 1.0 schema requires: docs/interop.md).
A2A_CLIENTS = {
    "pydantic_ai": [],
    "strands": ["--card-path", "/.well-known/agent.json"],
    "beeai": ["--card-path", "/.well-known/agent.json"],
    "google_adk": [],  # ADK's RemoteA2aAgent reads the 1.0 card
}
MCP_CLIENTS = ["pydantic_ai", "openai_agents", "strands", "google_adk", "llama_index"]
# One framework for each row kind (an A2A server, an A2A client, an MCP
# client: Pydantic AI is all three) and a second MCP client; the rest, each
# a minute or more of its own environment and process, in `make interop`.
CI_SUBSET = {"pydantic_ai", "openai_agents"}


def _chosen(framework: str) -> Any:
    everything = os.environ.get("SWITCHBOARD_INTEROP") == "all"
    marks = [] if everything or framework in CI_SUBSET else [pytest.mark.skip("make interop")]
    return pytest.param(framework, marks=marks, id=framework)


@dataclass
class Stage:
    gateway: Gateway
    echo: Recorder
    calc: Recorder
    user_token: str


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """A gateway with an SDK echo agent and an MCP server behind it."""
    scratch = tmp_path_factory.mktemp("interop")
    servers: list[ServerThread] = []
    try:
        echo, echo_recorder = inspecting_agent(
            lambda url: agent_card("Echo", url, [{"id": "echo"}])
        )
        calc, calc_recorder, _ = upstream_server()
        servers += [echo, calc]
        gateway = start_gateway(scratch / "data", None)
        servers.insert(0, gateway.server)
        with gateway.client() as admin:
            registered = admin.post("/agents", json={"card_url": echo.url, "id": "echo"})
            assert registered.status_code == 201, registered.text
            added = admin.post("/mcp-servers", json={"name": "calc", "url": calc.url + "/mcp"})
            assert added.status_code == 201, added.text
        yield Stage(gateway, echo_recorder, calc_recorder, gateway.token("alice", "crm:read"))
    finally:
        stop_all(*servers)


def _send(stage: Stage, agent_id: str, text: str) -> dict[str, Any]:
    message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    headers = {"Authorization": f"Bearer {stage.user_token}", "A2A-Version": "1.0"}
    answer = httpx.post(
        f"{stage.gateway.url}/a2a/{agent_id}",
        json=body,
        headers=headers,
        timeout=60,
        verify=client_tls(),
    )
    assert answer.status_code == 200, answer.text
    reply: dict[str, Any] = answer.json()
    assert "error" not in reply, reply
    return dict(reply["result"])


def _texts(result: Any) -> str:
    """Every text part anywhere in a result (a task's artifacts and history,
    or a message)."""
    return " ".join(_walk(result))


def _walk(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            yield value["text"]
        for inner in value.values():
            yield from _walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _walk(inner)


@pytest.mark.parametrize("server", [_chosen(s.framework) for s in A2A_SERVERS])
def test_a_framework_a2a_server_behind_the_gateway(
    stage: Stage, server: str, tmp_path: Path
) -> None:
    spec = next(s for s in A2A_SERVERS if s.framework == server)
    agent_id = f"{server.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    with framework_agent(server, tmp_path, spec.card_path) as agent:
        with stage.gateway.client() as admin:
            registered = admin.post("/agents", json={"card_url": agent.url, "id": agent_id})
            assert registered.status_code == 201, registered.text
            resource = registered.json()["resource"]
        result = _send(stage, agent_id, "hello from alice")
        task = result.get("task") or {}
        said = _texts(result)
        if task and spec.says not in said:
            # Answered with a task still at work: follow it through the gateway.
            said = _texts(_get_task(stage, agent_id, task["id"]))
        assert f"{spec.says} hello from alice" in said, result
        if spec.streams:
            streamed = _stream(stage, agent_id, "hello again")
            assert f"{spec.says} hello again" in _texts(streamed), streamed
            assert not [e for e in streamed if "error" in e], streamed
            last = streamed[-1]["result"]
            state = (last.get("statusUpdate") or last.get("task") or {}).get("status", {})
            assert state.get("state") == "TASK_STATE_COMPLETED", streamed
        calls = agent.calls()
        assert calls, "the agent received nothing"
        for call in calls:
            assert call.bearer is not None, call
            assert call.bearer != stage.user_token
            assert stage.user_token not in call.body
            claims = verify_as_downstream(call.bearer, stage.gateway.url, resource)
            assert claims["sub"] == "alice"
            assert claims["aud"] == resource
            assert "act" in claims
            assert set(claims.get("scope", "").split()) <= {"crm:read"}


def _stream(stage: Stage, agent_id: str, text: str) -> list[dict[str, Any]]:
    """`SendStreamingMessage` through the gateway: every SSE event, as sent."""
    message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "SendStreamingMessage",
        "params": {"message": message},
    }
    headers = {"Authorization": f"Bearer {stage.user_token}", "A2A-Version": "1.0"}
    events: list[dict[str, Any]] = []
    url = f"{stage.gateway.url}/a2a/{agent_id}"
    with httpx.stream(
        "POST", url, json=body, headers=headers, timeout=60, verify=client_tls()
    ) as answer:
        assert answer.status_code == 200, answer.read()
        for line in answer.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert events, "the stream was empty"
    return events


def _get_task(stage: Stage, agent_id: str, task_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {stage.user_token}", "A2A-Version": "1.0"}
    return settled_task(f"{stage.gateway.url}/a2a/{agent_id}", headers, task_id)


@pytest.mark.parametrize("client", [_chosen(c) for c in A2A_CLIENTS])
def test_a_framework_a2a_client_in_front_of_the_gateway(stage: Stage, client: str) -> None:
    stage.echo.clear()
    answer = run_client(
        client,
        "a2a_client.py",
        f"{stage.gateway.url}/a2a/echo",
        stage.user_token,
        "hello through the gateway",
        *A2A_CLIENTS[client],
    )
    assert "echo: hello through the gateway" in answer["text"], answer
    (call,) = stage.echo.calls()
    assert call.bearer is not None and call.bearer != stage.user_token


@pytest.mark.parametrize("client", [_chosen(c) for c in MCP_CLIENTS])
def test_a_framework_mcp_client_on_the_gateway(stage: Stage, client: str) -> None:
    url = f"{stage.gateway.url}/mcp"
    answer = run_client(
        client, "mcp_client.py", url, stage.user_token, "calc__add", json.dumps({"a": 2, "b": 40})
    )
    assert "calc__add" in answer["tools"] and "echo__echo" in answer["tools"], answer
    # The revision it spoke, where the client says (docs/interop.md lists them).
    assert answer.get("protocol_version", "2025-11-25") in ("2025-11-25", "2026-07-28"), answer
    print(f"{client}: MCP {answer.get('protocol_version', '(not said)')}")
    assert "42" in json.dumps(answer["result"]), answer
    skill = run_client(
        client, "mcp_client.py", url, stage.user_token, "echo__echo", json.dumps({"message": "hi"})
    )
    assert "echo: hi" in json.dumps(skill["result"]), skill
