"""What callers see while the database or Redis is down (docs/operations.md).

A gateway on its own throwaway PostgreSQL cluster and its own Redis, with
official-SDK agents on 127.0.0.1; the test stops and starts them:

* `/readyz` names each dependency, 503 while one is down;
* Redis down: the token endpoint keeps working (assertion ids live in the
  database), and a Redis restart forgets no used assertion;
* PostgreSQL down: the REST API, the token endpoint, both A2A bindings and
  `/mcp` all answer "unavailable" with a retry hint (503 + `Retry-After` where
  the answer is not already a stream), never -32603 or a 500;
* what was refused meanwhile is in the audit once the database is back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from a2a.types import GetTaskRequest, a2a_pb2_grpc
from mcp import MCPError

from gateway.agents.outages import DEPENDENCY_UNAVAILABLE
from gateway.delegation import targets
from policies.exchange import JWT_TOKEN_TYPE
from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.inspecting import Recorder
from tests.support.mcp_clients import mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.outages import (
    PostgresCluster,
    RedisServer,
    free_port,
    postgres_cluster,
    redis_server,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres


@dataclass
class Outages:
    dep: Deployment
    pg: PostgresCluster
    redis: RedisServer

    @property
    def url(self) -> str:
        return self.dep.gateway.url


@pytest.fixture
def outages(tmp_path: Path) -> Iterator[Outages]:
    with (
        postgres_cluster() as pg,
        redis_server() as redis,
        deployment(tmp_path, pg.url, redis_url=redis.url, a2a_grpc_port=free_port()) as dep,
    ):
        yield Outages(dep, pg, redis)


def ready(url: str) -> httpx.Response:
    return httpx.get(url + "/readyz", timeout=30, verify=client_tls())


def first_hop(dep: Deployment) -> str:
    """alice -> support through the gateway; the token support received."""
    answer = dep.send("support", dep.gateway.token("alice", USER_SCOPES), "order 5 X-100")
    assert answer.status_code == 200, answer.text
    token = dep["support"].recorder.calls()[-1].bearer
    assert token is not None
    return token


def exchange_with(dep: Deployment, subject: str, assertion: str) -> httpx.Response:
    """support's token for sales, exchanged by sales with ``assertion`` (its actor token)."""
    to_sales = dep.exchange(subject, by="support", audience="sales").json()["access_token"]
    extra = {"actor_token": assertion, "actor_token_type": JWT_TOKEN_TYPE}
    return dep.exchange(to_sales, by="sales", audience="inventory", method="none", extra=extra)


def test_readiness_names_each_dependency(outages: Outages) -> None:
    answer = ready(outages.url)
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"database": "ok", "redis": "ok"}

    outages.redis.stop()
    answer = ready(outages.url)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    body = answer.json()
    assert body["type"] == "urn:switchboard:problem:not-ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable")
    assert "redis" in body["title"]
    outages.redis.start()
    wait_for(lambda: ready(outages.url).status_code == 200)

    outages.pg.stop()
    try:
        answer = ready(outages.url)
        assert answer.status_code == 503
        assert answer.json()["checks"]["database"].startswith("unavailable")
        assert answer.json()["checks"]["redis"] == "ok"
        assert (
            httpx.get(outages.url + "/healthz", verify=client_tls()).status_code == 200
        )  # alive, not ready
    finally:
        outages.pg.start()
    wait_for(lambda: ready(outages.url).status_code == 200)


def test_a_redis_restart_or_outage_forgets_no_used_assertion(outages: Outages) -> None:
    dep = outages.dep
    subject = first_hop(dep)
    assertion = dep["sales"].assertion(outages.url, jti=f"jti-{uuid.uuid4().hex}")
    assert exchange_with(dep, subject, assertion).status_code == 200

    outages.redis.stop()  # no persistence: everything it held is gone
    outages.redis.start()
    again = exchange_with(dep, subject, assertion)
    assert again.status_code == 401
    assert "already used" in again.json()["error_description"]

    # Redis is not on the token endpoint's path at all: down, it still works
    # (and still refuses the replay).
    outages.redis.stop()
    fresh = dep["sales"].assertion(outages.url)
    assert exchange_with(dep, subject, fresh).status_code == 200
    assert exchange_with(dep, subject, fresh).status_code == 401
    outages.redis.start()


async def _mcp_call_during_outage(url: str, token: str) -> MCPError:
    async with mcp_client(url + "/mcp", token, "2026-07-28") as client:
        try:
            result = await client.call_tool("support__triage", {"message": "help"})
        except MCPError as error:
            return error
    raise AssertionError(f"the call answered during the outage: {result}")


@pytest.mark.parametrize("cached", [True, False], ids=["agent-cached", "agent-read-in-outage"])
def test_every_door_answers_a_database_outage_as_unavailable(
    outages: Outages, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    """``cached``: the agent's record is still cached when the doors are
    called, so each meets the outage in its handler, the call admitted.
    Otherwise -- as on a loaded machine, when more than TARGET_CACHE_SECONDS
    pass between the warm-up and a call -- each meets it deciding the call,
    reading the agent's record, before admission: the refusal is still its
    authenticated caller's."""
    dep, url = outages.dep, outages.url
    if not cached:
        monkeypatch.setattr(targets, "TARGET_CACHE_SECONDS", 0.0)
    alice = dep.gateway.token("alice", USER_SCOPES)
    carol = dep.gateway.token("carol", USER_SCOPES)  # the gRPC door's caller
    subject = first_hop(dep)
    assertion = dep["sales"].assertion(url)
    a2a_headers = {"Authorization": f"Bearer {alice}", "A2A-Version": "1.0"}
    # Warm what is cached, so each door reaches its own use of the database.
    assert dep.send("support", alice, "warm").status_code == 200
    admin = dep.gateway.client()  # its token is minted from the database

    outages.pg.stop()
    try:
        with admin:
            listing = admin.get("/agents")
        assert listing.status_code == 503 and listing.headers["retry-after"] == "5"
        assert listing.json()["type"] == "urn:switchboard:problem:database-unavailable"

        token = exchange_with_during_outage(dep, subject, assertion)
        assert token.status_code == 503, token.text
        assert token.headers["retry-after"] == "5"
        assert token.headers["cache-control"] == "no-store"
        assert token.json()["error"] == "temporarily_unavailable"

        # A2A JSON-RPC (the 1.0 pass-through) and HTTP+JSON (the SDK's path).
        get_task = {"jsonrpc": "2.0", "id": 7, "method": "GetTask", "params": {"id": "t-1"}}
        rpc = httpx.post(
            f"{url}/a2a/support",
            json=get_task,
            headers=a2a_headers,
            timeout=30,
            verify=client_tls(),
        )
        assert rpc.status_code == 503, rpc.text
        assert rpc.json()["id"] == 7
        assert rpc.headers["retry-after"] == "5"
        error = rpc.json()["error"]
        assert error["code"] == DEPENDENCY_UNAVAILABLE
        assert error["data"][0]["reason"] == "DEPENDENCY_UNAVAILABLE"
        assert error["data"][0]["metadata"]["dependency"] == "database"
        assert "Errno" not in rpc.text and "SELECT" not in rpc.text

        rest = httpx.get(
            f"{url}/a2a/support/tasks/nope", headers=a2a_headers, timeout=30, verify=client_tls()
        )
        assert rest.status_code == 503, rest.text
        assert rest.headers["retry-after"] == "5"
        assert rest.json()["error"]["status"] == "UNAVAILABLE"

        # A2A over gRPC: UNAVAILABLE, the hint as `retry-after` metadata.
        target = f"127.0.0.1:{dep.gateway.settings.a2a_grpc_port}"
        with grpc.insecure_channel(target) as channel:
            stub = a2a_pb2_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]
            with pytest.raises(grpc.RpcError) as unavailable:
                stub.GetTask(
                    GetTaskRequest(id="t-1", tenant="support"),
                    metadata=(("authorization", f"Bearer {carol}"), ("a2a-version", "1.0")),
                    timeout=30,
                )
        failed: Any = unavailable.value
        assert failed.code() == grpc.StatusCode.UNAVAILABLE, failed
        assert ("retry-after", "5") in tuple(failed.trailing_metadata())
        assert "Errno" not in failed.details() and "SELECT" not in failed.details()

        mcp_error = asyncio.run(_mcp_call_during_outage(url, alice))
        assert mcp_error.error.code == DEPENDENCY_UNAVAILABLE, mcp_error.error
        assert mcp_error.error.data == {"dependency": "database", "retryAfterSeconds": 5}
    finally:
        outages.pg.start()
    wait_for(lambda: ready(url).status_code == 200)

    # Nothing refused meanwhile went unrecorded: the audit kept it.
    def audited() -> list[dict[str, Any]]:
        with dep.gateway.client() as auditor:
            page = auditor.get("/audit", params={"limit": 1000})
        if page.status_code != 200:
            return []
        items: list[dict[str, Any]] = page.json()["items"]
        return [r for r in items if r["outcome"] == "dependency_unavailable"]

    # Every refusal was in the audit buffer before its answer left, and an
    # audit read writes the buffer first: one read that answers shows them all.
    wait_for(lambda: audited() != [])
    refused = sorted((r["event"], r["subject"], r["target"]) for r in audited())
    assert [r for r in refused if r[0] != "token_exchange"] == [
        ("a2a", "alice", "support"),  # JSON-RPC
        ("a2a", "alice", "support"),  # HTTP+JSON
        ("a2a", "carol", "support"),  # gRPC, for its own caller
        ("mcp", "alice", None),
    ], refused
    assert [r[0] for r in refused].count("token_exchange") == 1, refused


def exchange_with_during_outage(dep: Deployment, subject: str, assertion: str) -> httpx.Response:
    """As `exchange_with`, with the subject token already in hand (the first
    exchange of `exchange_with` needs the database too)."""
    extra = {"actor_token": assertion, "actor_token_type": JWT_TOKEN_TYPE}
    return dep.exchange(subject, by="sales", audience="inventory", method="none", extra=extra)


def _lists(recorder: Recorder) -> int:
    """How many times the gateway has listed the upstream's tools."""
    return sum(b'"tools/list"' in seen.body for seen in recorder.calls())


async def _add_during_outage(url: str, token: str, name: str) -> Any:
    async with mcp_client(url + "/mcp", token, "2026-07-28") as client:
        try:
            return await client.call_tool(name, {"a": 2, "b": 3})
        except MCPError as error:
            return error


async def _tool_named(url: str, token: str, suffix: str) -> str:
    async with mcp_client(url + "/mcp", token, "2026-07-28") as client:
        names = [t.name for t in (await client.list_tools()).tools]
    return next(n for n in names if n.endswith(suffix))


def test_a_database_outage_is_not_blamed_on_a_connected_mcp_server(tmp_path: Path) -> None:
    """Issue 57, item 11: while the database is down, the gateway's probe of
    an MCP server that is up lists its tools and cannot record them. That is
    the database's failure, not the server's: the session is kept, and a
    tools/call is answered by the server (or, where the call itself needs the
    database, "the database is unavailable") -- never "MCP server ... is not
    connected: ConnectionRefusedError: [Errno 111]"."""
    upstream, recorder, _box = upstream_server()
    try:
        with (
            postgres_cluster() as pg,
            redis_server() as redis,
            deployment(tmp_path, pg.url, redis_url=redis.url, mcp_probe_seconds=0.2) as dep,
        ):
            url = dep.gateway.url
            with dep.gateway.client() as admin:
                registered = admin.post(
                    "/mcp-servers", json={"name": "Tools", "url": upstream.url + "/mcp"}
                )
                assert registered.status_code == 201, registered.text
            alice = dep.gateway.token("alice", USER_SCOPES)
            add = asyncio.run(_tool_named(url, alice, "add"))
            before = asyncio.run(_add_during_outage(url, alice, add))
            assert not isinstance(before, MCPError), before

            pg.stop()
            try:
                # Two probes during the outage: the first one's record failed.
                listed = _lists(recorder)
                wait_for(lambda: _lists(recorder) >= listed + 2)
                for _ in range(3):
                    answer = asyncio.run(_add_during_outage(url, alice, add))
                    if isinstance(answer, MCPError):
                        assert "not connected" not in answer.error.message, answer.error
                        assert "Errno" not in answer.error.message, answer.error
                        assert answer.error.code == DEPENDENCY_UNAVAILABLE, answer.error
                        assert answer.error.data == {
                            "dependency": "database",
                            "retryAfterSeconds": 5,
                        }
                    else:  # the server is up: the call went through
                        assert not answer.is_error, answer
            finally:
                pg.start()
    finally:
        upstream.stop()
