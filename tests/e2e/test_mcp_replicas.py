"""2025-11-25 MCP sessions on any replica (issue 16): two replicas on one
PostgreSQL behind a round-robin balancer without affinity, the official `mcp`
client in a session whose every request takes a new connection -- so the
balancer alternates replicas under it -- and a real upstream MCP server.

A request for a session that lands on the replica that did not open it is
passed on to the one that did (`gateway.mcp.replicas`); a session whose
replica is gone is a 404 that says so, which the spec's clients take as
"start a new session".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from registry.tls import client_tls
from tests.support.balancer import RoundRobin
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_servers import upstream_server
from tests.support.outages import free_port
from tests.support.servers import ServerThread, stop_all

pytestmark = pytest.mark.postgres


@dataclass
class Pair:
    replicas: list[Gateway]
    balancer: RoundRobin
    upstream: ServerThread

    @property
    def url(self) -> str:
        return self.balancer.url + "/mcp"


@pytest.fixture
def pair(tmp_path: Path, postgres_url: str) -> Iterator[Pair]:
    with _pair(tmp_path, postgres_url) as made:
        yield made


@contextlib.contextmanager
def _pair(tmp_path: Path, postgres_url: str, **settings: Any) -> Iterator[Pair]:
    ports = [free_port(), free_port()]
    balancer = RoundRobin(ports).start()
    upstream, _, _ = upstream_server()
    replicas: list[Gateway] = []
    try:
        for name, port in zip(("a", "b"), ports, strict=True):
            replicas.append(
                start_gateway(
                    tmp_path / name, postgres_url, port=port, public_url=balancer.url, **settings
                )
            )
        with replicas[0].client() as admin:
            added = admin.post("/mcp-servers", json={"name": "Alpha", "url": upstream.url + "/mcp"})
            assert added.status_code == 201, added.text
        yield Pair(replicas, balancer, upstream)
    finally:
        stop_all(*(r.server for r in replicas), upstream)
        balancer.stop()


def _no_keepalive(token: str) -> httpx2.AsyncClient:
    """Every request on a new connection: the balancer spreads them."""
    return httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30, read=60),
        limits=httpx2.Limits(max_keepalive_connections=0),
        verify=client_tls(),
    )


async def _six_calls(pair: Pair, token: str) -> list[int]:
    results = []
    async with (
        _no_keepalive(token) as http,
        Client(streamable_http_client(pair.url, http_client=http), mode="legacy") as client,
    ):
        listed = {t.name for t in (await client.list_tools()).tools}
        assert "alpha__add" in listed
        for n in range(6):
            result = await client.call_tool("alpha__add", {"a": n, "b": 1})
            assert isinstance(result, types.CallToolResult) and not result.is_error
            assert result.structured_content is not None
            results.append(result.structured_content["result"])
    return results


def test_a_session_is_served_whichever_replica_a_request_lands_on(pair: Pair) -> None:
    token = pair.replicas[0].token("alice")
    before = dict(pair.balancer.connections)
    assert anyio.run(_six_calls, pair, token) == [1, 2, 3, 4, 5, 6]
    used = {port: pair.balancer.connections[port] - before[port] for port in before}
    assert all(count >= 3 for count in used.values()), used  # both replicas served it


def test_without_routing_the_other_replica_does_not_know_the_session(
    tmp_path: Path, postgres_url: str
) -> None:
    # The control: what a balancer without affinity did before (and does
    # with `mcp_session_routing: false`, which then needs sticky routing).
    with _pair(tmp_path, postgres_url, mcp_session_routing=False) as pair:
        token = pair.replicas[0].token("alice")
        try:
            anyio.run(_six_calls, pair, token)
        except BaseException as failed:  # what the client raises, an exception group
            text = repr(failed)
        else:
            raise AssertionError("the session worked on both replicas without routing")
    assert "Session not found" in text or "404" in text, text


def test_a_session_whose_replica_is_gone_is_a_404_that_says_so(pair: Pair) -> None:
    token = pair.replicas[0].token("alice")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
    }
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    opened = httpx.post(
        pair.replicas[0].url + "/mcp", json=initialize, headers=headers, verify=client_tls()
    )
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    owner, dot, _ = session.partition(".")
    assert dot and len(owner) == 12, session  # the id names its replica
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    on_other = httpx.post(
        pair.replicas[1].url + "/mcp",
        json=ping,
        headers={**headers, "Mcp-Session-Id": session},
        verify=client_tls(),
    )
    assert on_other.status_code == 200, on_other.text  # passed on to its replica
    pair.replicas[0].stop()
    gone = httpx.post(
        pair.replicas[1].url + "/mcp",
        json=ping,
        headers={**headers, "Mcp-Session-Id": session},
        verify=client_tls(),
    )
    assert gone.status_code == 404
    message = gone.json()["error"]["message"]
    assert message.startswith("Session not found") and owner in message, message
    assert "start a new session" in message
