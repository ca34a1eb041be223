"""Connected accounts at a gateway-run vendor agent, end to end: an
OpenAI-compatible chat API (`gateway.demo.vendor_llm`) that trusts only the
vendor's own OAuth logins (the `mcp` SDK's authorization server), registered
with `POST /vendor-agents` and ``user_oauth``. A real gateway on both
databases, users connecting through the console as a browser would, the
a2a-sdk client calling through `/a2a/{agent}`, an MCP client through `/mcp`.

What must hold: the authorization server is found from the API's own 401
(RFC 9728) or named at registration; a user who has not connected gets a
task in ``TASK_STATE_AUTH_REQUIRED`` with the link, nothing reaches the
vendor, and the task goes on once that user -- and no other -- connects;
each call carries its user's own token for that API's resource (RFC 8707),
never the gateway's; a refusal at the vendor (revoked, or short of a scope)
fails the task with the link and ends or steps up the connection; the
client's secret is never shown nor stored in the clear; removing the agent
revokes its connections.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import mcp_types as types
import pytest
import sqlalchemy as sa
from a2a.types import TaskState

from gateway.demo.vendor import Vendor
from registry.tls import client_tls
from tests.e2e.test_connected_accounts import browser
from tests.e2e.test_connected_agents import answer, get_task, said, send
from tests.support import waiting
from tests.support.gateway import SECRET_KEY, Gateway, GatewayFactory
from tests.support.mcp_clients import mcp_client

POLICY = "agents: {}\n"
AGENT = "vendor-agent"  # the name `send` and `get_task` call
TERMINAL = (
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
)


def registration(vendor: Vendor, **user_oauth: Any) -> dict[str, Any]:
    return {
        "id": AGENT,
        "name": "Vendor chat",
        "upstream": {"type": "openai", "base_url": vendor.url + "/llm/v1", "model": "vendor"},
        "skills": [
            {"id": "whoami", "name": "Who am I"},
            {"id": "write", "name": "Write", "instructions": "Write a note."},
        ],
        "user_oauth": user_oauth,
    }


@pytest.fixture
def gateway(make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    return make_gateway(database_url, policy=POLICY, secret_key=SECRET_KEY)


@pytest.fixture
def registered(gateway: Gateway, vendor: Vendor) -> Gateway:
    with gateway.client() as admin:
        added = admin.post("/vendor-agents", json=registration(vendor))
    assert added.status_code == 201, added.text
    assert added.json()["config"]["user_oauth"]["client_secret"] is False
    return gateway


def connect(
    gateway: Gateway, vendor: Vendor, console: httpx.Client, as_user: str, scope: str = ""
) -> dict[str, list[str]]:
    """Connect through the console; what the gateway asked the vendor for."""
    link = f"/ui/connections/{AGENT}/connect" + (f"?scope={scope}" if scope else "")
    started = console.get(link)
    assert started.status_code == 303, started.text
    authorize = started.headers["location"]
    assert authorize.startswith(vendor.url + "/authorize?")
    asked = parse_qs(urlparse(authorize).query)
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == [f"{gateway.url}/ui/connections/{AGENT}/callback"]
    assert asked["resource"] == [vendor.url + "/llm/v1"]  # the API called (RFC 8707)
    at_vendor = httpx.get(authorize, cookies=vendor.login(as_user), timeout=30, verify=client_tls())
    assert at_vendor.status_code in (302, 303), at_vendor.text
    done = console.get(at_vendor.headers["location"].removeprefix(gateway.url))
    assert done.status_code == 303, done.text
    assert done.headers["location"].endswith(f"/ui/connections?connected={AGENT}")
    return asked


def wait_for(gateway: Gateway, token: str, task_id: str, *states: TaskState) -> Any:
    """The task once it is in one of ``states``; a task that ends in another
    state fails at once rather than at the deadline."""

    def reached() -> Any:
        task = get_task(gateway, token, task_id)
        if task.status.state in states:
            return task
        assert task.status.state not in TERMINAL, f"task {task_id} ended {task.status}"
        return None

    return waiting.wait_for(reached, seconds=30, every=0.1, what=f"task {task_id} in {states}")


def test_a_call_waits_for_its_users_consent_then_goes_on_with_their_own_token(
    registered: Gateway, vendor: Vendor
) -> None:
    gateway = registered
    alice, bob = gateway.token("alice"), gateway.token("bob")
    held = send(gateway, alice)
    assert held.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
    connect_url = f"{gateway.url}/ui/connections/{AGENT}/connect"
    assert connect_url in said(held)
    bobs = send(gateway, bob, streaming=True)
    assert bobs.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
    assert vendor.calls == []  # nothing reached the vendor

    with browser(gateway, "alice") as console:
        asked = connect(gateway, vendor, console, "alice@vendor")
    # Found from the API's 401 and its protected resource metadata: the scopes it lists.
    assert asked["scope"] == ["notes:read notes:write"]
    assert len(vendor.registrations) == 1  # registered dynamically (RFC 7591)
    done = wait_for(gateway, alice, held.id, TaskState.TASK_STATE_COMPLETED)
    assert answer(done) == "you are alice@vendor"
    [call] = vendor.calls
    assert call["tool"] == "chat" and call["subject"] == "alice@vendor"
    # Bob's call still waits for Bob.
    assert get_task(gateway, bob, bobs.id).status.state == TaskState.TASK_STATE_AUTH_REQUIRED

    with browser(gateway, "bob") as console:
        connect(gateway, vendor, console, "bob@vendor")
    done = wait_for(gateway, bob, bobs.id, TaskState.TASK_STATE_COMPLETED)
    assert answer(done) == "you are bob@vendor"
    assert [c["subject"] for c in vendor.calls] == ["alice@vendor", "bob@vendor"]
    assert vendor.calls[0]["token"] != vendor.calls[1]["token"]


def test_a_connected_users_calls_stream_and_the_audit_names_the_connection(
    registered: Gateway, vendor: Vendor
) -> None:
    gateway = registered
    carol = gateway.token("carol")
    with browser(gateway, "carol") as console:
        connect(gateway, vendor, console, "carol@vendor")
    for streaming in (False, True):
        task = send(gateway, carol, streaming=streaming)
        assert task.status.state == TaskState.TASK_STATE_COMPLETED, said(task)
        assert "you are carol@vendor" in answer(task)
    assert [c["subject"] for c in vendor.calls] == ["carol@vendor"] * 2
    with gateway.client() as admin:
        [listed] = admin.get("/connections", params={"all": "true"}).json()["items"]
        assert (listed["upstream"], listed["subject"]) == (AGENT, "carol")
        records = admin.get("/audit", params={"agent": AGENT, "limit": 50}).json()["items"]
    runs = [r for r in records if r["event"] == "a2a.run" and r["outcome"] == "ok"]
    assert len(runs) == 2
    for record in runs:
        assert record["detail"].startswith(f"connection {listed['id']} (scopes notes:read")
    tokens = {c["token"] for c in vendor.calls}
    assert not [r for r in records if any(t in str(r) for t in tokens)]


def test_an_mcp_client_calling_the_skill_is_told_to_connect(
    registered: Gateway, vendor: Vendor
) -> None:
    gateway = registered
    token = gateway.token("dan")

    async def run() -> types.CallToolResult:
        async with mcp_client(gateway.url + "/mcp", token, "2026-07-28") as client:
            return await client.call_tool(f"{AGENT}__whoami", {"message": "hi"})

    result = gateway.server.run(run())
    assert result.is_error
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert f"/ui/connections/{AGENT}/connect" in text
    assert vendor.calls == []


def test_a_refusal_at_the_vendor_fails_the_task_with_the_link(
    gateway: Gateway, vendor: Vendor
) -> None:
    """Revoked there: the connection ends. Short of a scope (403
    insufficient_scope): the link asks for exactly what is missing, and the
    connection keeps working for what it was granted."""
    with gateway.client() as admin:
        added = admin.post("/vendor-agents", json=registration(vendor, scope="notes:read"))
        assert added.status_code == 201, added.text
    erin = gateway.token("erin")
    with browser(gateway, "erin") as console:
        asked = connect(gateway, vendor, console, "erin@vendor")
    assert asked["scope"] == ["notes:read"]  # the registration's
    assert send(gateway, erin).status.state == TaskState.TASK_STATE_COMPLETED
    write = send(gateway, erin, skill="write")
    write = wait_for(gateway, erin, write.id, TaskState.TASK_STATE_FAILED)
    assert "/ui/connections/vendor-agent/connect?scope=notes%3Aread+notes%3Awrite" in said(write)
    with gateway.client(erin) as as_erin:
        assert len(as_erin.get("/connections").json()["items"]) == 1  # kept
    assert send(gateway, erin).status.state == TaskState.TASK_STATE_COMPLETED
    with browser(gateway, "erin") as console:
        connect(gateway, vendor, console, "erin@vendor", scope="notes:read notes:write")
    done = send(gateway, erin, skill="write")
    assert done.status.state == TaskState.TASK_STATE_COMPLETED, said(done)
    assert "erin@vendor wrote" in answer(done)

    for used in {c["token"] for c in vendor.calls}:  # revoked at the vendor
        vendor.provider.access.pop(used, None)
    calls = len(vendor.calls)
    gone = send(gateway, erin)
    gone = wait_for(gateway, erin, gone.id, TaskState.TASK_STATE_FAILED)
    assert f"{gateway.url}/ui/connections/{AGENT}/connect" in said(gone)
    assert len(vendor.calls) == calls
    with gateway.client(erin) as as_erin:
        assert as_erin.get("/connections").json()["items"] == []  # ended
    # The next message waits for Erin to connect again, as a first one does.
    assert send(gateway, erin).status.state == TaskState.TASK_STATE_AUTH_REQUIRED


def test_a_named_authorization_server_and_a_preregistered_client(
    gateway: Gateway, vendor: Vendor, database_url: str | None
) -> None:
    secret = "the-clients-own-secret-0123456789"
    vendor.preregister(
        "switchboard-llm",
        secret,
        [f"{gateway.url}/ui/connections/{AGENT}/callback"],
        auth_method="client_secret_basic",  # RFC 6749 §2.3.1, the gateway's for such a client
    )
    body = registration(
        vendor,
        authorization_server=vendor.url,
        client_id="switchboard-llm",
        client_secret=secret,
        scope="notes:read",
    )
    with gateway.client() as admin:
        added = admin.post("/vendor-agents", json=body)
        assert added.status_code == 201, added.text
        shown = admin.get(f"/vendor-agents/{AGENT}")
    assert shown.json()["config"]["user_oauth"] == {
        "authorization_server": vendor.url,
        "client_id": "switchboard-llm",
        "client_secret": True,
        "scope": "notes:read",
    }
    assert secret not in added.text + shown.text
    url = database_url or f"sqlite:///{gateway.settings.data_dir / 'switchboard.db'}"
    engine = sa.create_engine(url.replace("+asyncpg", "").replace("+aiosqlite", ""))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM vendor_agents")).all()
    engine.dispose()
    assert rows and secret not in str(rows)

    frank = gateway.token("frank")
    with browser(gateway, "frank") as console:
        asked = connect(gateway, vendor, console, "frank@vendor")
    assert asked["client_id"] == ["switchboard-llm"]
    assert asked["scope"] == ["notes:read"]
    assert vendor.registrations == []  # no dynamic registration
    # The vendor took the code with the client's secret (by HTTP Basic, not in the form).
    [exchange] = [r for r in vendor.token_requests if r["grant_type"] == "authorization_code"]
    assert "client_secret" not in exchange
    task = send(gateway, frank)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, said(task)
    assert answer(task) == "you are frank@vendor"


def test_removing_the_agent_removes_and_revokes_its_connections(
    registered: Gateway, vendor: Vendor
) -> None:
    gateway = registered
    with browser(gateway, "gil") as console:
        connect(gateway, vendor, console, "gil@vendor")
        page = console.get("/ui/connections")
        assert AGENT in page.text
    with gateway.client() as admin:
        # Its client is part of its registration, not set as an A2A agent's.
        client = {"client_id": "x"}
        assert admin.put(f"/agents/{AGENT}/oauth-client", json=client).status_code == 409
        assert len(admin.get("/connections", params={"all": "true"}).json()["items"]) == 1
        assert admin.delete(f"/vendor-agents/{AGENT}").status_code == 204
        assert admin.get("/connections", params={"all": "true"}).json()["items"] == []
    assert len(vendor.revoked) == 1


@pytest.mark.parametrize(
    ("change", "said_"),
    [
        ({"api_key": "k" * 20}, "another header"),
        ({"api_key": "k" * 20, "api_key_header": "authorization"}, "another header"),
        ({"token_header": "Authorization"}, "token_header"),
        ({"user_oauth": {"client_secret": "s" * 20}}, "client_secret goes with client_id"),
        ({"user_oauth": {"scope": "a\tb"}}, "scope"),
        ({"user_oauth": {"scope": 'a"b'}}, "scope"),
        ({"user_oauth": {"client_id": "gw\r\nX-Injected: 1"}}, "client_id"),
        ({"user_oauth": {"authorization_server": "https://as.example/?tenant=1"}}, "issuer"),
        ({"user_oauth": {"authorization_server": "not a url"}}, "authorization_server"),
        ({"user_oauth": {"unknown": 1}}, "unknown"),
        ({"user_oauth": {"authorization_server": "http://169.254.169.254"}}, "SSRF"),
    ],
)
def test_a_registration_that_cannot_work_is_refused_and_stores_nothing(
    gateway: Gateway, vendor: Vendor, change: dict[str, Any], said_: str
) -> None:
    body = {**registration(vendor), **change}
    with gateway.client() as admin:
        refused = admin.post("/vendor-agents", json=body)
        assert refused.status_code == 422, refused.text
        assert said_ in refused.text
        assert admin.get(f"/vendor-agents/{AGENT}").status_code == 404
