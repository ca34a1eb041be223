"""The agent-side helper `gateway.client.token_exchange.TokenExchangeAuth`
over real HTTP: support, holding the token the gateway minted for it, calls
sales through its front door with a plain httpx client and the helper -- the
helper exchanges (RFC 8693, support's own credentials), caches, and sales
receives its own token (sub = the user, act = support, aud = sales), never
support's. A refused exchange is an error naming why; requests to anything
but the gateway's front doors go out untouched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from gateway.client.token_exchange import ExchangeRefused, TokenExchangeAuth
from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.inspecting import verify_as_downstream


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, None) as d:
        yield d


def _received_by_support(dep: Deployment) -> str:
    answer = dep.send("support", dep.gateway.token("alice", USER_SCOPES), "quote please")
    assert answer.status_code == 200, answer.text
    token = dep["support"].recorder.calls()[-1].bearer
    assert token is not None
    return token


def _message(text: str) -> dict[str, object]:
    message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
    return {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}


def test_support_calls_sales_through_the_gateway_with_the_helper(dep: Deployment) -> None:
    received = _received_by_support(dep)
    support = dep["support"]
    assert support.secret is not None
    auth = TokenExchangeAuth(
        dep.gateway.url, "support", support.secret, subject_token=lambda: received
    )
    url = f"{dep.gateway.url}/a2a/sales"
    headers = {"A2A-Version": "1.0"}
    with httpx.Client(auth=auth, timeout=30, verify=client_tls()) as client:
        for _ in range(2):
            answer = client.post(url, json=_message("a quote for 5 X-100"), headers=headers)
            assert answer.status_code == 200, answer.text
            assert "echo: a quote" in answer.text

    async def twice_async() -> None:
        async with httpx.AsyncClient(auth=auth, timeout=30, verify=client_tls()) as client:
            answer = await client.post(url, json=_message("and async"), headers=headers)
            assert answer.status_code == 200, answer.text

    anyio.run(twice_async)
    seen = dep["sales"].recorder.calls()
    assert len(seen) == 3
    for call in seen:
        assert call.bearer is not None and call.bearer != received
        claims = verify_as_downstream(call.bearer, dep.gateway.url, dep["sales"].resource)
        assert claims["sub"] == "alice"
        assert claims["act"]["sub"] == "support"
    # One exchange served both sync calls (cached), the async one reused it too.
    with dep.gateway.client() as admin:
        records = admin.get("/audit", params={"limit": "200"}).json()["items"]
    exchanges = [r for r in records if r["event"] == "token_exchange"]
    assert len(exchanges) == 1, exchanges


def test_a_refused_exchange_says_why_and_other_hosts_get_no_token(dep: Deployment) -> None:
    received = _received_by_support(dep)
    support = dep["support"]
    assert support.secret is not None
    # More than the subject token holds: the gateway refuses, the helper says so.
    greedy = TokenExchangeAuth(
        dep.gateway.url, "support", support.secret, subject_token=received, scope="hr:read"
    )
    with (
        httpx.Client(auth=greedy, timeout=30, verify=client_tls()) as client,
        pytest.raises(ExchangeRefused) as refused,
    ):
        client.post(f"{dep.gateway.url}/a2a/sales", json=_message("hi"))
    assert refused.value.error == "invalid_scope"
    # A look-alike of the gateway, and another path, are sent nothing.
    auth = TokenExchangeAuth(dep.gateway.url, "support", support.secret, subject_token=received)
    gateway = httpx.URL(dep.gateway.url)
    assert auth.resource_for(httpx.URL(f"{dep.gateway.url}/a2a/sales/message:send")) == (
        f"{dep.gateway.url}/a2a/sales"
    )
    assert auth.resource_for(httpx.URL(f"{dep.gateway.url}/agents")) is None
    assert (
        auth.resource_for(gateway.copy_with(port=(gateway.port or 80) + 1, path="/a2a/x")) is None
    )
    assert auth.resource_for(httpx.URL("http://evil.example/a2a/sales")) is None
    assert auth.resource_for(httpx.URL(f"{dep.gateway.url}/a2a/../agents")) is None
    with httpx.Client(auth=auth, timeout=30, verify=client_tls()) as client:
        listed = client.get(f"{dep.gateway.url}/agents")
    assert listed.status_code == 401  # no token was put on it
