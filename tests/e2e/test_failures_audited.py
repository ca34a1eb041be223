"""Every path that fails a delegated call writes its audit record (issue 15):
one test per path, over real HTTP, on SQLite and PostgreSQL. Each checks the
caller's answer is an error in its own protocol and the audit log holds a
record of the call with the failure's outcome -- a failure that escapes the
task's error handling would answer and leave no record, or a record saying
`ok`.

The tests share one deployment per module: each calls as a user of its own
(the rate limit is per user) and reads the audit records of that user.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import anyio
import httpx
import pytest
from mcp import MCPError

from gateway.mcp.errors import DELEGATION_REFUSED, RATE_LIMITED, UPSTREAM_UNAVAILABLE
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.a2a_agents import scripted_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import agent_card, inspecting_agent
from tests.support.mcp_clients import mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for

POLICY = """\
agents:
  forbidden:
    allow: false
  worker: {}
  gone: {}
  scripted: {}
  tickets: {}
  alpha:
    tools:
      fail:
        allow: false
  beta: {}
limits:
  - name: worker-once
    rate: 1/minute
    per: [user]
    agents: [worker]
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Setup:
    gateway: Gateway
    user: str  # the test's own caller
    token: str  # the user's
    alpha: ServerThread  # the federated MCP server
    beta: ServerThread  # another, for the test that stops it

    def send(self, agent: str, text: str = "hello", *, rest: bool = False) -> httpx.Response:
        message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
        headers = {"Authorization": f"Bearer {self.token}", "A2A-Version": "1.0"}
        url = f"{self.gateway.url}/a2a/{agent}"
        if rest:
            return httpx.post(
                url + "/message:send",
                json={"message": message},
                headers=headers,
                verify=client_tls(),
            )
        body = {
            "jsonrpc": "2.0",
            "id": "r1",
            "method": "SendMessage",
            "params": {"message": message},
        }
        return httpx.post(url, json=body, headers=headers, timeout=30, verify=client_tls())

    def audited(self, target: str, outcome: str) -> dict[str, Any]:
        """The audit record of a call to ``target`` with ``outcome`` (the log
        is written behind, in batches: waited for)."""
        with self.gateway.client() as admin:

            def items() -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = admin.get(
                    "/audit", params={"agent": target, "user": self.user}
                ).json()["items"]
                return found

            return wait_for(
                lambda: next((i for i in items() if i["outcome"] == outcome), None),
                what=lambda: f"no {outcome!r} record for {target}: {items()}",
            )

    def mcp_result(self, tool: str, arguments: dict[str, Any]) -> Any:
        async def call() -> Any:
            async with mcp_client(self.gateway.url + "/mcp", self.token, "2026-07-28") as client:
                return await client.call_tool(tool, arguments)

        return anyio.run(call)

    def mcp_call(self, tool: str, arguments: dict[str, Any]) -> MCPError:
        async def call() -> MCPError:
            async with mcp_client(self.gateway.url + "/mcp", self.token, "2026-07-28") as client:
                try:
                    result = await client.call_tool(tool, arguments)
                except MCPError as error:
                    return error
            raise AssertionError(f"{tool} did not fail: {result}")

        return anyio.run(call)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    tmp_path = tmp_path_factory.mktemp("failures")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    skills = [{"id": "work"}]
    servers: list[ServerThread] = []
    worker, _ = inspecting_agent(lambda url: agent_card("Worker", url, skills))
    gone, _ = inspecting_agent(lambda url: agent_card("Gone", url, skills))
    forbidden, _ = inspecting_agent(lambda url: agent_card("Forbidden", url, skills))
    scripted = scripted_agent()
    alpha, _, _ = upstream_server()
    beta, _, _ = upstream_server()
    servers += [worker, gone, forbidden, scripted, alpha, beta]
    gateway = start_gateway(
        tmp_path / "data",
        module_database_url,
        policy_file=policy,
        upstream_timeout_seconds=5,
        retry_max_attempts=1,
    )
    servers.insert(0, gateway.server)
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            for agent_id, server in (
                ("worker", worker),
                ("gone", gone),
                ("forbidden", forbidden),
                ("scripted", scripted),
            ):
                added = admin.post("/agents", json={"card_url": server.url, "id": agent_id})
                assert added.status_code == 201, added.text
            hook = {
                "id": "tickets",
                "name": "Tickets",
                "upstream": {
                    "type": "rest",
                    "url": f"http://127.0.0.1:{closed_port()}/hooks/tickets",
                    "mapping": {"request": {"body": {"query": "{{text}}"}}},
                },
                "skills": [{"id": "lookup", "name": "Look up a ticket"}],
            }
            added = admin.post("/vendor-agents", json=hook)
            assert added.status_code == 201, added.text
            for name, server in (("Alpha", alpha), ("Beta", beta)):
                added = admin.post("/mcp-servers", json={"name": name, "url": server.url + "/mcp"})
                assert added.status_code == 201, added.text
        gone.stop()  # registered, then dead: nothing listens on its port
        yield Setup(gateway, "", "", alpha, beta)
    finally:
        stop_all(*servers)


@pytest.fixture
def setup(deployment: Setup) -> Setup:
    """The module's deployment, called as a user of the test's own."""
    user = f"u-{uuid.uuid4().hex[:12]}"
    return replace(deployment, user=user, token=deployment.gateway.token(user))


def _jsonrpc_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.get("id") == "r1", body
    assert "error" in body and "result" not in body, body
    error: dict[str, Any] = body["error"]
    return error


# A2A ----------------------------------------------------------------------------


def test_a_dead_agent(setup: Setup) -> None:
    error = _jsonrpc_error(setup.send("gone"))
    assert error["code"] == -32603, error  # A2A has no code of its own for it
    assert error["message"] == "agent gone could not be reached (connection failed)"
    record = setup.audited("gone", "a2a_error:InternalError")
    assert record["decision"] == "allow" and record["event"] == "a2a.SendMessage"
    assert record["detail"] == error["message"]


def test_a_dead_agent_over_http_json(setup: Setup) -> None:
    answered = setup.send("gone", rest=True)
    # RFC 9110 §15.6.4: the gateway is fine, what is behind it is not.
    assert answered.status_code == 503, answered.text
    assert answered.json()["error"]["status"] == "UNAVAILABLE"
    assert setup.audited("gone", "a2a_error:InternalError")["event"] == "a2a.SendMessage"


def test_an_agent_answering_a_jsonrpc_error(setup: Setup) -> None:
    error = _jsonrpc_error(setup.send("scripted", "a2a-error"))
    assert error["code"] == -32001, error  # the agent's own error, passed on
    assert setup.audited("scripted", "a2a_error:TaskNotFoundError")["detail"] == "gone"


@pytest.mark.parametrize("script", ["http500", "garbage"])
def test_an_agent_answering_nonsense(setup: Setup, script: str) -> None:
    error = _jsonrpc_error(setup.send("scripted", script))
    assert error["code"] == -32006, error  # InvalidAgentResponseError
    record = setup.audited("scripted", "a2a_error:InvalidAgentResponseError")
    assert record["detail"] == error["message"]


def test_an_agent_answering_nonsense_over_http_json(setup: Setup) -> None:
    answered = setup.send("scripted", "garbage", rest=True)
    # RFC 9110 §15.6.3: an invalid answer from the server behind the gateway.
    assert answered.status_code == 502, answered.text
    assert answered.json()["error"]["details"][0]["reason"] == "INVALID_AGENT_RESPONSE"
    setup.audited("scripted", "a2a_error:InvalidAgentResponseError")


def test_a_dead_webhook_agent(setup: Setup) -> None:
    answered = setup.send("tickets")
    body = answered.json()
    assert answered.status_code != 500, body
    # A gateway-run task: the failure is the task's state, or the call's error.
    failed = (
        "error" in body
        or body.get("result", {}).get("task", {}).get("status", {}).get("state")
        == "TASK_STATE_FAILED"
    )
    assert failed, body
    record = setup.audited("tickets", "upstream_error")
    assert record["event"] == "a2a.run", record
    assert record["detail"] == "agent tickets could not be reached (connection failed)"


def test_a_policy_denial(setup: Setup) -> None:
    answered = setup.send("forbidden")
    assert answered.status_code == 403
    assert _jsonrpc_error(answered)["code"] == -32000
    assert setup.audited("forbidden", "denied")["decision"] == "deny"


def test_a_rate_limit(setup: Setup) -> None:
    assert "result" in setup.send("worker").json()
    refused = setup.send("worker")
    assert refused.status_code == 429 and "retry-after" in refused.headers
    _jsonrpc_error(refused)
    assert setup.audited("worker", "rate_limited")["decision"] == "deny"


def test_an_unknown_agent(setup: Setup) -> None:
    answered = setup.send("nobody")
    assert answered.status_code == 404
    _jsonrpc_error(answered)
    setup.audited("nobody", "unknown_agent")


# MCP ----------------------------------------------------------------------------


def test_a_denied_mcp_tool(setup: Setup) -> None:
    error = setup.mcp_call("alpha__fail", {})
    assert error.code == DELEGATION_REFUSED
    assert setup.audited("alpha", "denied")["decision"] == "deny"


def test_an_agent_skill_tool_whose_agent_is_dead(setup: Setup) -> None:
    # A tool that ran and failed is a result with isError (MCP "Tools", error
    # handling), not a protocol error.
    result = setup.mcp_result("gone__work", {"message": "hello"})
    assert result.is_error, result
    assert "agent gone could not be reached" in str(result.content), result
    assert setup.audited("gone", "a2a_error:InternalError")["decision"] == "allow"


def test_an_agent_skill_tool_over_its_rate_limit(setup: Setup) -> None:
    assert "result" in setup.send("worker").json()
    error = setup.mcp_call("worker__work", {"message": "hello"})
    assert error.code == RATE_LIMITED
    assert setup.audited("worker", "rate_limited")["decision"] == "deny"


def test_a_dead_mcp_server(setup: Setup) -> None:
    # Beta stops answering after it was registered (alpha goes on, for the others).
    setup.beta.stop()
    error = setup.mcp_call("beta__add", {"a": 1, "b": 2})
    assert error.code == UPSTREAM_UNAVAILABLE, error
    assert "ssl:default" not in error.message, error
    assert error.message.endswith(":" + setup.beta.url.rsplit(":", 1)[1] + " (connection refused)")
    record = setup.audited("beta", "upstream_error")
    assert record["decision"] == "allow" and record["detail"] == error.message
