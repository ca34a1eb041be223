"""Editing the policy through the API, over real HTTP on both databases: the
quickstart's built-in default edited, checked first, saved over the version
read (a save over a stale one refused, of racing saves exactly one kept),
audited, in force at once -- a real call refused after the edit -- and after
a restart; every bad document refused with its line and nothing changed; a
policy file edited only where it lives; two replicas on one PostgreSQL
database converging on the version one of them saved."""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from policies.policy_file import DEFAULT_DOCUMENT
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import agent_card, inspecting_agent
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for

CLOSED = """\
# sales is closed while the contract is renewed
agents:
  sales:
    allow: false
"""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def sales() -> Iterator[ServerThread]:
    server, _ = inspecting_agent(lambda url: agent_card("Sales", url, [{"id": "upsell"}]))
    yield server
    server.stop()


def register(gateway: Gateway, sales: ServerThread) -> None:
    with gateway.client() as admin:
        answer = admin.post("/agents", json={"card_url": sales.url, "id": "sales"})
        assert answer.status_code == 201, answer.text


def call_sales(gateway: Gateway) -> httpx.Response:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": message, "metadata": {"skill": "upsell"}},
    }
    headers = {"Authorization": f"Bearer {gateway.token('alice', '')}", "A2A-Version": "1.0"}
    return httpx.post(
        f"{gateway.url}/a2a/sales", json=body, headers=headers, timeout=30, verify=client_tls()
    )


def explain(gateway: Gateway) -> str:
    with gateway.client() as admin:
        body = {"user_scopes": "", "target": "sales", "action": "upsell"}
        answer = admin.post("/policies/explain", json=body)
    assert answer.status_code == 200, answer.text
    decision: str = answer.json()["decision"]
    return decision


def policy_of(gateway: Gateway) -> dict[str, Any]:
    with gateway.client() as admin:
        found: dict[str, Any] = admin.get("/policies").json()
    return found


def changes(gateway: Gateway) -> list[dict[str, Any]]:
    with gateway.client() as admin:
        items = admin.get("/audit", params={"kind": "all", "limit": 200}).json()["items"]
    return [e for e in items if e["event"] == "policy.changed"]


def test_the_quickstart_default_is_edited_checked_saved_and_audited(
    tmp_path: Path, database_url: str | None, sales: ServerThread
) -> None:
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        register(gateway, sales)
        shown = policy_of(gateway)
        assert shown["source"] == "default" and shown["file"] is None
        assert shown["document"] == DEFAULT_DOCUMENT
        assert shown["digest"] == digest(DEFAULT_DOCUMENT)
        assert call_sales(gateway).status_code == 200

        with gateway.client() as admin:
            checked = admin.post("/policies/check", json={"document": CLOSED}).json()
            assert checked["valid"] is True and checked["digest"] == digest(CLOSED)
            assert checked["base_digest"] == shown["digest"]
            assert "+    allow: false" in checked["diff"]
            assert "-version: 1" in checked["diff"]
            assert any("allow: false" in line for line in checked["effect"])
            # A check stores nothing.
            assert admin.get("/policies/versions").json()["items"] == []
            assert policy_of(gateway)["source"] == "default"

            saved = admin.put(
                "/policies", json={"document": CLOSED, "base_digest": shown["digest"]}
            )
            assert saved.status_code == 200, saved.text
            assert saved.json() == {"source": "stored", "version": 1, "digest": digest(CLOSED)}

            # The same document again: already in force, nothing changes.
            again = admin.post("/policies/check", json={"document": CLOSED}).json()
            assert again["diff"] == [] and again["effect"] == []

            [listed] = admin.get("/policies/versions").json()["items"]
            assert listed["id"] == 1 and listed["in_force"] is True
            assert listed["author"]["subject"] == "admin"
            assert listed["created_at"].endswith("+00:00")
            assert admin.get("/policies/versions/1").json()["document"] == CLOSED
            assert admin.get("/policies/versions/2").status_code == 404

        shown = policy_of(gateway)
        assert (shown["source"], shown["version"]) == ("stored", 1)
        assert shown["document"] == CLOSED and shown["policy"]["agents"]["sales"]["allow"] is False
        # In force at once: the decision, and a real call.
        assert explain(gateway) == "deny"
        refused = call_sales(gateway)
        assert refused.status_code == 403 and "policy forbids" in refused.text
        [record] = changes(gateway)
        assert record["subject"] == "admin" and record["target"] == "policy"
        assert record["detail"] == (
            f"version 1: sha256:{digest(DEFAULT_DOCUMENT)} -> sha256:{digest(CLOSED)}"
        )

        # A restart starts on the newest version; saving the default again reopens.
        gateway.restart()
        assert policy_of(gateway)["version"] == 1 and explain(gateway) == "deny"
        with gateway.client() as admin:
            body = {"document": DEFAULT_DOCUMENT, "base_digest": digest(CLOSED)}
            assert admin.put("/policies", json=body).json()["version"] == 2
            assert [v["id"] for v in admin.get("/policies/versions").json()["items"]] == [2, 1]
        assert explain(gateway) == "allow" and call_sales(gateway).status_code == 200
        assert len(changes(gateway)) == 2
    finally:
        gateway.stop()


DEEP = "agents:\n  sales:\n    skills: " + "[" * 40 + "]" * 40 + "\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(7)
)
BAD = [
    ("agents:\n  sales: [unclosed\n", 3, "not valid YAML"),
    ("agents:\n  sales:\n    allow: perhaps\n", 3, "agents.sales.allow"),
    ("agents:\n  sales:\n    alow: false\n", 3, "agents.sales.alow: unknown key"),
    ("agents:\n  sales: {}\n  sales: {allow: false}\n", 3, "duplicate key"),
    ('{"agents": {"sales": {"require": "x"}}}', 1, "agents.sales.require"),
    ("- a list\n", 1, "must be a mapping"),
    (DEEP, 3, "nested deeper than 32 levels"),
    (LAUGHS, 5, "aliases expanded"),
]


def test_bad_documents_are_refused_by_line_and_nothing_changes(
    tmp_path: Path, database_url: str | None, sales: ServerThread
) -> None:
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        register(gateway, sales)
        base = policy_of(gateway)["digest"]
        with gateway.client() as admin:
            for document, line, said in BAD:
                checked = admin.post("/policies/check", json={"document": document}).json()
                assert checked["valid"] is False, document
                assert any(e["line"] == line and said in e["message"] for e in checked["errors"])
                put = admin.put("/policies", json={"document": document, "base_digest": base})
                assert put.status_code == 422, document
                assert put.json()["type"] == "urn:switchboard:problem:invalid-policy"
                assert any(e["line"] == line and said in e["message"] for e in put.json()["errors"])
            # The body itself: too large, an unknown key, no base, a base that is no digest.
            huge = "# " + "x" * (256 * 1024) + "\n"
            for body in (
                {"document": huge, "base_digest": base},
                {"document": CLOSED, "base_digest": base, "force": True},
                {"document": CLOSED},
                {"document": CLOSED, "base_digest": "sha256:" + base},
            ):
                assert admin.put("/policies", json=body).status_code == 422, body
            assert admin.post("/policies/check", json={"document": huge}).status_code == 422
            wide = "# " + "é" * (200 * 1024) + "\n"  # under 256 Ki characters, over 256 KiB
            answer = admin.post("/policies/check", json={"document": wide})
            assert answer.status_code == 422 and "bytes" in answer.text
            # A stale base: someone else's version would be lost.
            stale = admin.put("/policies", json={"document": CLOSED, "base_digest": "0" * 64})
            assert stale.status_code == 409
            assert stale.json()["type"] == "urn:switchboard:problem:policy-changed"
        # Not an admin: nothing read, checked or saved.
        with gateway.client(admin=False) as user:
            assert user.get("/policies/versions").status_code == 403
            assert user.post("/policies/check", json={"document": CLOSED}).status_code == 403
            body = {"document": CLOSED, "base_digest": base}
            assert user.put("/policies", json=body).status_code == 403
        with gateway.anonymous() as nobody:
            assert nobody.put("/policies", json=body).status_code == 401
        shown = policy_of(gateway)
        assert (shown["source"], shown["digest"]) == ("default", base)
        with gateway.client() as admin:
            assert admin.get("/policies/versions").json()["items"] == []
        assert changes(gateway) == [] and explain(gateway) == "allow"
    finally:
        gateway.stop()


def test_of_saves_racing_over_one_version_exactly_one_is_kept(
    tmp_path: Path, database_url: str | None
) -> None:
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        base = policy_of(gateway)["digest"]
        documents = [f"agents:\n  agent-{i}:\n    allow: false\n" for i in range(8)]
        token = gateway.token("admin", ADMIN_SCOPE)  # once: minting reads the database

        def save(document: str) -> int:
            with gateway.client(token) as admin:
                body = {"document": document, "base_digest": base}
                return admin.put("/policies", json=body).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = sorted(pool.map(save, documents))
        assert codes == [200] + [409] * 7, codes
        with gateway.client() as admin:
            [kept] = admin.get("/policies/versions").json()["items"]
        assert policy_of(gateway)["digest"] == kept["digest"]
        assert len(changes(gateway)) == 1
    finally:
        gateway.stop()


def test_a_policy_file_is_edited_where_it_lives(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(CLOSED)
    gateway = start_gateway(tmp_path / "data", None, policy_file=policy)
    try:
        shown = policy_of(gateway)
        assert (shown["source"], shown["document"]) == ("file", CLOSED)
        assert shown["digest"] == digest(CLOSED)
        with gateway.client() as admin:
            # A check still says what a change to the file would do.
            checked = admin.post("/policies/check", json={"document": DEFAULT_DOCUMENT}).json()
            assert checked["valid"] and "-    allow: false" in checked["diff"]
            body = {"document": DEFAULT_DOCUMENT, "base_digest": shown["digest"]}
            refused = admin.put("/policies", json=body)
            assert refused.status_code == 409
            assert refused.json()["type"] == "urn:switchboard:problem:policy-from-file"
            assert str(policy) in refused.json()["detail"] and "edit it there" in refused.text
            assert admin.get("/policies/versions").json()["items"] == []
        assert policy_of(gateway)["document"] == CLOSED
    finally:
        gateway.stop()


LIMITED = "limits:\n  - {name: calls, rate: 5/minute, per: [user]}\n"


def test_the_deployment_s_own_check_refuses_what_it_cannot_enforce(tmp_path: Path) -> None:
    # Two worker processes, no Redis: a rate limit would count per process.
    gateway = start_gateway(tmp_path / "data", None, workers=2)
    try:
        base = policy_of(gateway)["digest"]
        with gateway.client() as admin:
            checked = admin.post("/policies/check", json={"document": LIMITED}).json()
            assert checked["valid"] is False and "redis" in checked["errors"][0]["message"].lower()
            put = admin.put("/policies", json={"document": LIMITED, "base_digest": base})
            assert put.status_code == 422
        assert policy_of(gateway)["source"] == "default"
    finally:
        gateway.stop()


@pytest.mark.postgres
def test_two_replicas_converge_on_the_version_one_saved(
    tmp_path: Path, postgres_url: str, sales: ServerThread
) -> None:
    one = start_gateway(tmp_path / "one", postgres_url)
    two = start_gateway(tmp_path / "two", postgres_url)
    try:
        register(one, sales)
        base = policy_of(two)["digest"]
        assert explain(two) == "allow" and call_sales(two).status_code == 200
        with one.client() as admin:
            body = {"document": CLOSED, "base_digest": base}
            assert admin.put("/policies", json=body).status_code == 200
        wait_for(lambda: policy_of(two)["digest"] == digest(CLOSED))
        assert policy_of(two)["version"] == 1
        assert explain(two) == "deny" and call_sales(two).status_code == 403
        # The other replica's base is now stale for both; a save over the new
        # version from the second replica is in force on the first.
        with two.client() as admin:
            body = {"document": CLOSED, "base_digest": base}
            assert admin.put("/policies", json=body).status_code == 409
            body = {"document": DEFAULT_DOCUMENT, "base_digest": digest(CLOSED)}
            assert admin.put("/policies", json=body).json()["version"] == 2
        wait_for(lambda: policy_of(one)["version"] == 2)
        assert explain(one) == "allow" and call_sales(one).status_code == 200
    finally:
        stop_all(one.server, two.server)


def test_a_replica_alone_hears_of_one_started_later_at_its_next_heartbeat(
    tmp_path: Path, database_url: str | None
) -> None:
    """A replica alone reads the stored policy once a minute (issue 57: an
    idle gateway leaves its database alone); a replica started later is seen
    at its next heartbeat, which makes it read at once: a save on the new
    replica is in force on the first well within that minute."""
    fast: dict[str, Any] = {
        "public_url": "http://switchboard.test",  # one address, as behind a balancer
        "replica_heartbeat_seconds": 0.5,
        "replica_stale_seconds": 2.0,
    }
    one = start_gateway(tmp_path / "data", database_url, **fast)
    servers = [one.server]
    try:
        state = one.server.app.state.switchboard
        replicas = state.approvals.parts.runner._replicas
        (reloader,) = (job for job in state.metrics.jobs if job.name == "policy-reloader")
        wait_for(replicas.alone, 20, what="the first replica alone")
        since = time.time()
        # Once a reload has ended while alone, the next is a minute away: one
        # ends within a second (its pace until then), unless the last did.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: (reloader.state.last_ok or 0) > since, 3)
        two = start_gateway(tmp_path / "data", database_url, **fast)
        servers.append(two.server)
        with two.client() as admin:
            body = {"document": CLOSED, "base_digest": policy_of(two)["digest"]}
            assert admin.put("/policies", json=body).status_code == 200
        wait_for(
            lambda: policy_of(one)["digest"] == digest(CLOSED),
            20,
            what="the save on the new replica in force on the first",
        )
        # The save may be read at the reload's own pace before the heartbeat
        # that sees the second replica: wait for that heartbeat (0.5 s).
        wait_for(lambda: not replicas.alone(), 5, what="the second replica seen")
    finally:
        stop_all(*servers)
