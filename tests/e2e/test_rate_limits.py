"""Rate limits and quotas from the policy file, in the one decision: over real
HTTP, on the A2A front door (429 + Retry-After, both bindings' error forms),
`/mcp` (-32015 with the retry hint), `/oauth/token` (RFC 6749 error, 429 +
Retry-After), shown by explain, audited, counted in metrics, and shared by
two replicas through Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import redis
from mcp import MCPError

from gateway.mcp.errors import RATE_LIMITED
from policies.policy_file import PolicyError, parse_policy
from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.delegation import POLICY, USER_SCOPES, Deployment, deployment
from tests.support.gateway import start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_clients import mcp_client
from tests.support.servers import stop_all
from tests.support.services import local_redis

LIMITS = """\
limits:
  - name: support-per-user
    rate: 3/minute
    per: [user]
    agents: [support]
  - name: exchanges-per-client
    rate: 2/minute
    per: [client]
    agents: [inventory]
"""
REDIS = local_redis(0)


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, policy_file=_policy(tmp_path)) as made:
        yield made


def test_the_fourth_call_in_a_minute_gets_429_with_retry_after(dep: Deployment) -> None:
    alice = dep.gateway.token("alice", USER_SCOPES)
    for _ in range(3):
        assert dep.send("support", alice).status_code == 200
    reached = dep.send("support", alice)
    assert reached.status_code == 429
    assert 1 <= int(reached.headers["Retry-After"]) <= 60
    error = reached.json()["error"]
    assert error["data"]["retry_after"] == int(reached.headers["Retry-After"])
    assert "support-per-user (3/minute)" in error["message"]
    assert len(dep["support"].recorder.calls()) == 3, "the refused call reached the agent"
    # Counted per user: bob has his own counter.
    assert dep.send("support", dep.gateway.token("bob", USER_SCOPES)).status_code == 200
    with dep.gateway.client() as admin:
        records = admin.get("/audit", params={"agent": "support", "limit": "50"}).json()["items"]
        limited = [r for r in records if r["outcome"] == "rate_limited"]
        metrics = admin.get("/metrics").text
    assert len(limited) == 1
    assert limited[0]["decision"] == "deny"
    assert "support-per-user" in " ".join(limited[0]["reasons"])
    assert 'outcome="rate_limited"' in metrics


def test_http_json_binding_says_resource_exhausted(dep: Deployment) -> None:
    alice = dep.gateway.token("alice", USER_SCOPES)
    for _ in range(3):
        assert dep.send("support", alice).status_code == 200
    body = {
        "message": {
            "messageId": str(uuid.uuid4()),
            "role": "ROLE_USER",
            "parts": [{"text": "hello"}],
        }
    }
    reached = httpx.post(
        f"{dep.gateway.url}/a2a/support/message:send",
        json=body,
        headers={"Authorization": f"Bearer {alice}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    )
    assert reached.status_code == 429
    assert reached.headers["Retry-After"]
    assert reached.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_token_exchange_is_limited_per_client(dep: Deployment) -> None:
    alice = dep.gateway.token("alice", USER_SCOPES)
    answers = []
    for _ in range(3):
        sales_token = _first_hop_token(dep, alice)
        answers.append(
            dep.exchange(
                sales_token, by="sales", resource=dep["inventory"].resource, scope="inventory:read"
            )
        )
    assert [a.status_code for a in answers[:2]] == [200, 200], [a.text for a in answers]
    reached = answers[2]
    assert reached.status_code == 429
    assert reached.json()["error"] == "temporarily_unavailable"
    assert int(reached.headers["Retry-After"]) >= 1
    assert reached.headers["Cache-Control"] == "no-store"


def _first_hop_token(dep: Deployment, user_token: str) -> str:
    response = dep.send("sales", user_token)
    assert response.status_code == 200, response.text
    token = dep["sales"].recorder.calls()[-1].bearer
    assert token is not None
    return token


def test_explain_names_the_limits_and_what_is_left(dep: Deployment) -> None:
    alice = dep.gateway.token("alice", USER_SCOPES)
    assert dep.send("support", alice).status_code == 200
    with dep.gateway.client() as admin:
        explained = admin.post(
            "/policies/explain",
            json={"user_scopes": USER_SCOPES, "target": "support", "subject": "alice"},
        ).json()
    (limit,) = explained["limits"]
    assert limit["name"] == "support-per-user"
    assert limit["rate"] == "3/minute"
    assert limit["per"] == ["alice"]
    assert limit["remaining"] == 2


def test_an_mcp_client_gets_the_retry_hint(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("limits:\n  - name: work-per-user\n    rate: 1/minute\n    skills: [work]\n")
    worker = worker_agent(Recorder())
    gateway = start_gateway(tmp_path / "data", None, policy_file=policy)
    try:
        with gateway.client() as admin:
            body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
            assert admin.post("/agents", json=body).status_code == 201
        token = gateway.token("alice", "")

        async def calls() -> MCPError:
            async with mcp_client(gateway.url + "/mcp", token, "legacy") as client:
                first = await client.call_tool("worker__work", {"message": "task one"})
                assert not first.is_error, first
                with pytest.raises(MCPError) as reached:
                    await client.call_tool("worker__work", {"message": "task two"})
                return reached.value

        error = anyio.run(calls)
        assert error.error.code == RATE_LIMITED
        assert isinstance(error.error.data, dict)
        assert error.error.data["retry_after"] >= 1
        assert error.error.data["denial"] == "rate_limited"
    finally:
        stop_all(gateway.server, worker)


def test_two_replicas_share_the_counters_in_redis(tmp_path: Path) -> None:
    redis.Redis.from_url(REDIS).flushdb()
    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    first_dir.mkdir()
    second_dir.mkdir()
    with (
        deployment(first_dir, redis_url=REDIS, policy_file=_policy(first_dir)) as one,
        deployment(second_dir, redis_url=REDIS, policy_file=_policy(second_dir)) as two,
    ):
        alice_one = one.gateway.token("alice", USER_SCOPES)
        alice_two = two.gateway.token("alice", USER_SCOPES)
        assert one.send("support", alice_one).status_code == 200
        assert two.send("support", alice_two).status_code == 200
        assert one.send("support", alice_one).status_code == 200
        assert two.send("support", alice_two).status_code == 429
    redis.Redis.from_url(REDIS).flushdb()


def _policy(where: Path) -> Path:
    path = where / "limits-policy.yaml"
    path.write_text(POLICY + LIMITS)
    return path


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ("  - name: x\n    rate: lots\n", "is not a rate"),
        ("  - name: x\n    rate: 1/minute\n    per: [planet]\n", "per"),
        ("  - name: x\n    rate: 1/minute\n  - name: x\n    rate: 2/minute\n", "own name"),
        ("  - name: x\n    rate: 1/minute\n    strategy: token-bucket\n", "strategy"),
    ],
)
def test_bad_limits_are_refused_with_their_line(limits: str, expected: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy("agents: {}\nlimits:\n" + limits, "policy.yaml")
    assert expected in str(refused.value)
    assert "policy.yaml:" in str(refused.value)
