"""`switchboard serve --workers 2` (issue 19): two processes behind one port,
each a replica of its own, and every piece of state correct whichever of them
a request lands on -- on SQLite (the embedded default) and on PostgreSQL.

One real `python -m gateway serve --dev --workers 2` per database, a real A2A
agent (the sales desk, official SDK), a real upstream MCP server. Where a test
must know which worker serves a request it goes to that worker's own port
(the address each announces in `gateway_replicas`); elsewhere it uses the
shared port, one connection per request, so the kernel spreads the requests.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import jwt
import mcp_types as types
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import create_engine, text

from gateway.demo.flow_agents import SalesDesk, sales_desk_app, support_desk_app
from gateway.demo.process import GatewayProcess
from gateway.flows.engine import system_database_url
from policies.exchange import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE
from policies.keys import ec_public_jwk
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.e2e.test_flow_crash import CRASH_FLOW
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

# Kills gateway processes: on one database each in `make test` (`tests/conftest.py`).
pytestmark = pytest.mark.crash

POLICY = """\
version: 1
agents:
  crash-flow:
    grant: [sales:quote]
  sales:
    require: [sales:quote]
    grant: [sales:quote]
  support:
    grant: [sales:quote]
"""
# Short beats: a worker gone is noticed in seconds rather than the default 45.
FAST = {
    "replica_heartbeat_seconds": 0.5,
    "replica_stale_seconds": 2.0,
    # How soon a worker connects to an MCP server registered through another
    # (as a replica does, `gateway.federation.upstreams`).
    "mcp_reconcile_seconds": 0.5,
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@dataclass
class Workers:
    gateway: GatewayProcess
    desk: SalesDesk
    support_key: ec.EllipticCurvePrivateKey
    sales_resource: str

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(system_database_url(self.gateway.settings.effective_database_url))
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query), params).all())
        finally:
            engine.dispose()

    def replicas(self) -> dict[str, str]:
        """The workers registered now: replica id -> the address each announces."""
        return {str(r.id): str(r.url) for r in self.sql("SELECT id, url FROM gateway_replicas")}

    def wait_for_workers(self, seconds: float = 60) -> dict[str, str]:
        """Both workers registered and answering on their own ports."""

        def answering() -> dict[str, str] | None:
            found = self.replicas()
            if len(found) == 2 and all(_answers(url) for url in found.values()):
                return found
            return None

        return wait_for(answering, seconds, every=0.2, what="both workers answering")

    def user(self, base_url: str | None = None) -> httpx.Client:
        client = self.gateway.client("dana", "sales:quote")
        client.base_url = httpx.URL(base_url or self.gateway.url)
        return client

    def owner(self, run_id: str) -> str:
        # DBOS's own table: in the `dbos` schema on PostgreSQL, beside ours on SQLite.
        query = "SELECT executor_id FROM workflow_status WHERE workflow_uuid = :r"
        if self.gateway.settings.database_url:
            query = query.replace("workflow_status", "dbos.workflow_status")
        found = self.sql(query, r=run_id)
        return str(found[0][0])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2, verify=client_tls()).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def workers(
    module_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    tmp = tmp_path_factory.mktemp("workers")
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    support = ServerThread(lambda url: support_desk_app(url, desk)).start()
    upstream, _, _ = upstream_server()
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    gateway = GatewayProcess(
        tmp / "data",
        database_url=module_database_url,
        policy_file=policy,
        settings=FAST,
        workers=2,
    )
    try:
        gateway.start()
        key = ec.generate_private_key(ec.SECP256R1())
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            for agent_id, server in (("sales", sales), ("support", support)):
                card = server.url + "/.well-known/agent-card.json"
                added = admin.post("/agents", json={"card_url": card, "id": agent_id})
                assert added.status_code == 201, added.text
                if agent_id == "sales":
                    resource = added.json()["resource"]
            jwk = {**ec_public_jwk(key.public_key()), "kid": "support-1"}
            credential = {"method": "private_key_jwt", "jwks": {"keys": [jwk]}}
            issued = admin.post("/agents/support/credentials", json=credential)
            assert issued.status_code == 201, issued.text
            mcp_server = {"name": "Alpha", "url": upstream.url + "/mcp"}
            assert admin.post("/mcp-servers", json=mcp_server).status_code == 201
            assert admin.post("/flows", json=CRASH_FLOW).status_code == 201
        made = Workers(gateway, desk, key, resource)
        for url in made.wait_for_workers().values():
            _wait_for_alpha(url, gateway.token("dana", "sales:quote"))
        yield made
    finally:
        gateway.stop()
        for server in (sales, support, upstream):
            server.stop()


def _initialize(base_url: str, token: str) -> str:
    """Open a 2025-11-25 session with raw HTTP; its `Mcp-Session-Id`."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "workers-test", "version": "1"},
        },
    }
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    answer = httpx.post(
        base_url + "/mcp", json=body, headers=headers, timeout=30, verify=client_tls()
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["mcp-session-id"]


def _rpc(base_url: str, token: str, session: str, body: dict[str, Any]) -> httpx.Response:
    headers = {
        **MCP_HEADERS,
        "Authorization": f"Bearer {token}",
        "Mcp-Session-Id": session,
        "MCP-Protocol-Version": "2025-11-25",
    }
    return httpx.post(
        base_url + "/mcp", json=body, headers=headers, timeout=30, verify=client_tls()
    )


def _wait_for_alpha(base_url: str, token: str, seconds: float = 30) -> None:
    """Until the worker at ``base_url`` has connected to the upstream MCP server."""
    session = _initialize(base_url, token)
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "alpha__add", "arguments": {"a": 1, "b": 1}},
    }
    wait_for(
        lambda: "result" in _messages(_rpc(base_url, token, session, call))[-1],
        seconds,
        every=0.2,
        what=f"{base_url} connected to the MCP server",
    )


def _messages(answer: httpx.Response) -> list[dict[str, Any]]:
    if answer.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in answer.text.splitlines() if line.startswith("data:")]
        return [json.loads(d) for d in data if d.strip()]
    return [answer.json()]


def _result(answer: httpx.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC result for ``request_id`` in a JSON or SSE answer (an SSE
    stream may carry notifications first)."""
    found = next((m for m in _messages(answer) if m.get("id") == request_id), None)
    assert found is not None and "result" in found, answer.text
    return dict(found["result"])


def test_requests_through_the_shared_port_land_on_both_workers(workers: Workers) -> None:
    replicas = workers.wait_for_workers()
    assert len(set(replicas.values())) == 2  # each worker has an address of its own
    port = workers.gateway.port
    assert all(f":{port}" not in url for url in replicas.values())
    token = workers.gateway.token("dana", "sales:quote")
    # A session id names the worker that opened it (`<replica id>.<SDK id>`).
    seen: set[str] = set()
    for _ in range(60):
        seen.add(_initialize(workers.gateway.url, token).partition(".")[0])
        if seen == set(replicas):
            break
    assert seen == set(replicas)
    configured = workers.gateway.settings.replica_id
    assert sorted(replicas) == [f"{configured}-1", f"{configured}-2"]


def test_an_mcp_session_opened_on_one_worker_is_served_by_the_other(workers: Workers) -> None:
    (a, a_url), (_, b_url) = sorted(workers.wait_for_workers().items())
    token = workers.gateway.token("dana", "sales:quote")
    session = _initialize(a_url, token)
    assert session.startswith(a + ".")
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert _rpc(b_url, token, session, initialized).status_code == 202
    for n in range(3):
        call = {
            "jsonrpc": "2.0",
            "id": 10 + n,
            "method": "tools/call",
            "params": {"name": "alpha__add", "arguments": {"a": n, "b": 1}},
        }
        answer = _rpc(b_url, token, session, call)  # passed on to worker a
        assert answer.status_code == 200, answer.text
        assert _result(answer, 10 + n)["structuredContent"] == {"result": n + 1}

    # The SDK's own client through the shared port, a new connection per
    # request: requests land on either worker, the session holds.
    async def many_calls() -> list[int]:
        results = []
        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"},
                timeout=httpx2.Timeout(30, read=60),
                limits=httpx2.Limits(max_keepalive_connections=0),
                verify=client_tls(),
            ) as http,
            Client(
                streamable_http_client(workers.gateway.url + "/mcp", http_client=http),
                mode="legacy",
            ) as client,
        ):
            for n in range(16):
                result = await client.call_tool("alpha__add", {"a": n, "b": 1})
                assert isinstance(result, types.CallToolResult) and not result.is_error
                assert result.structured_content is not None
                results.append(result.structured_content["result"])
        return results

    assert anyio.run(many_calls) == list(range(1, 17))


def test_a_used_client_assertion_is_refused_by_either_worker(workers: Workers) -> None:
    urls = sorted(workers.wait_for_workers().values())
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": "support",
            "sub": "support",
            "aud": workers.gateway.url + "/oauth/token",
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        },
        workers.support_key,
        algorithm="ES256",
        headers={"kid": "support-1"},
    )
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": workers.gateway.token("dana", "sales:quote"),
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "resource": workers.sales_resource,
        "actor_token": assertion,
        "actor_token_type": JWT_TOKEN_TYPE,
    }
    first = httpx.post(urls[0] + "/oauth/token", data=form, timeout=30, verify=client_tls())
    assert first.status_code == 200, first.text
    again = httpx.post(urls[1] + "/oauth/token", data=form, timeout=30, verify=client_tls())
    assert again.status_code == 401, again.text
    assert again.json()["error"] == "invalid_client"


def test_an_a2a_task_created_on_one_worker_is_found_on_the_other(workers: Workers) -> None:
    a_url, b_url = sorted(workers.wait_for_workers().values())
    send = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": uuid.uuid4().hex,
                "role": "ROLE_USER",
                "parts": [{"data": {"sku": "X-1", "quantity": 2}}],
                "metadata": {"skill": "quote"},
            }
        },
    }
    headers = {"A2A-Version": "1.0"}
    with workers.user(a_url) as on_a, workers.user(b_url) as on_b:
        sent = on_a.post("/a2a/sales", json=send, headers=headers)
        assert sent.status_code == 200, sent.text
        task_id = sent.json()["result"]["task"]["id"]
        get = {"jsonrpc": "2.0", "id": "2", "method": "GetTask", "params": {"id": task_id}}
        found = on_b.post("/a2a/sales", json=get, headers=headers).json()
    assert found["result"]["id"] == task_id, found
    assert found["result"]["status"]["state"] == "TASK_STATE_COMPLETED"


def _run(workers: Workers, run_id: str, done: Any, seconds: float = 60) -> dict[str, Any]:

    def finished() -> dict[str, Any] | None:
        with workers.user() as dana:
            answer = dana.get(f"/flows/crash-flow/runs/{run_id}")
        if answer.status_code == 200 and done(answer.json()):
            return dict(answer.json())
        return None

    return wait_for(finished, seconds, every=0.2, what=f"run {run_id} as awaited")


def _work_in_flight(run: dict[str, Any]) -> bool:
    steps = {s["id"]: s for s in run["steps"]}
    return "work" in steps and bool(steps["work"]["upstream_task_id"])


def _finished(run: dict[str, Any]) -> bool:
    return run["state"] in ("completed", "failed")


def _pid_on_port(gateway: GatewayProcess, port: int) -> int:
    """The worker listening on ``port`` (its own), from /proc."""
    listening = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                listening.add(fields[9])
    for pid in gateway.worker_pids():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd).removeprefix("socket:[").rstrip("]") in listening:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker listens on {port}")


def test_a_flow_run_survives_its_worker_killed_and_the_worker_is_replaced(
    workers: Workers,
) -> None:
    replicas = workers.wait_for_workers()
    before = workers.gateway.worker_pids()
    assert len(before) == 2
    with workers.user() as dana:
        started = dana.post("/flows/crash-flow/runs", json={"input": {"quantity": 10}})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    _run(workers, run_id, _work_in_flight)
    owner = workers.owner(run_id)
    assert owner in replicas
    victim = _pid_on_port(workers.gateway, httpx.URL(replicas[owner]).port or 0)
    quotes = workers.desk.count("quote")
    os.kill(victim, signal.SIGKILL)

    # The service keeps answering on the shared port meanwhile.
    for _ in range(10):
        with workers.user() as dana:
            assert dana.get("/agents").status_code == 200
    after = _run(workers, run_id, _finished)
    assert after["state"] == "completed", after
    assert "Dear ACME" in after["output"]
    assert workers.desk.count("quote") == quotes  # a completed step is not run again

    # The supervisor started a new worker in the dead one's place, under its id
    # (its slot), so it took its own run back; a new address, a new process.
    renewed = workers.wait_for_workers()
    assert set(renewed) == set(replicas)
    assert renewed[owner] != replicas[owner]
    now = workers.gateway.worker_pids()
    assert victim not in now and len(now) == 2 and len(now - before) == 1
