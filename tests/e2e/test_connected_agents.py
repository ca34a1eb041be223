"""Connected accounts at an A2A agent, end to end: the vendor's agent on the
official a2a-sdk trusts only the vendor's own OAuth logins (the `mcp` SDK's
authorization server: `gateway.demo.vendor`), and its card says so with an
OAuth2 authorization-code scheme. A real gateway on both databases, users
connecting through the console as a browser would, the a2a-sdk client
calling through `/a2a/{agent}`.

What must hold: a user who has not connected gets a task in
``TASK_STATE_AUTH_REQUIRED`` with the connect link, nothing reaches the
agent, and the task goes on by itself once that user -- and no other --
connects; each user's call carries their own token; the audit names the
connection and never a token; an admin cannot approve the held call past
its user's consent; removing the agent revokes its connections.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import mcp_types as types
import pytest
import sqlalchemy as sa
from a2a.client import ClientConfig, ClientFactory
from a2a.types import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    Task,
    TaskState,
)

from gateway.demo.vendor import Vendor
from registry.tls import client_tls
from tests.e2e.test_connected_accounts import browser
from tests.support import waiting
from tests.support.gateway import SECRET_KEY, Gateway, GatewayFactory, start_gateway
from tests.support.mcp_clients import mcp_client

POLICY = "agents: {}\n"
AGENT = "vendor-agent"


def with_agent(gateway: Gateway, vendor: Vendor) -> Gateway:
    """``gateway`` with the vendor's agent registered as `AGENT`."""
    with gateway.client() as admin:
        card = vendor.url + "/agent/.well-known/agent-card.json"
        added = admin.post("/agents", json={"card_url": card, "id": AGENT})
        assert added.status_code == 201, added.text
    return gateway


@pytest.fixture(scope="module")
def vendor(module_database_url: str | None) -> Iterator[Vendor]:
    """One vendor for each of the module's gateways (one a database): each
    test has users of its own, and reads the calls made since it began
    (``vendor.calls[before:]``)."""
    with Vendor() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(
    vendor: Vendor, tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Gateway]:
    """One gateway for the module's tests, the vendor's agent registered."""
    folder = tmp_path_factory.mktemp("connected-agents")
    running = start_gateway(
        folder / "data", module_database_url, policy=POLICY, secret_key=SECRET_KEY
    )
    try:
        yield with_agent(running, vendor)
    finally:
        running.stop()


@pytest.fixture
def own_vendor() -> Iterator[Vendor]:
    """A vendor of the test's own: the test changes how it registers clients,
    counts what it revoked, or has a gateway of its own on SQLite only."""
    with Vendor() as running:
        yield running


@pytest.fixture
def own_gateway(
    own_vendor: Vendor, make_gateway: GatewayFactory, database_url: str | None
) -> Gateway:
    """A gateway of the test's own: the test removes the agent, or sets its client."""
    gateway = make_gateway(database_url, policy=POLICY, secret_key=SECRET_KEY)
    return with_agent(gateway, own_vendor)


def connect(gateway: Gateway, vendor: Vendor, console: httpx.Client, as_user: str) -> None:
    started = console.get(f"/ui/connections/{AGENT}/connect")
    assert started.status_code == 303, started.text
    authorize = started.headers["location"]
    assert authorize.startswith(vendor.url + "/authorize?")  # the card's authorizationUrl
    asked = parse_qs(urlparse(authorize).query)
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == [f"{gateway.url}/ui/connections/{AGENT}/callback"]
    assert asked["resource"] == [vendor.url + "/agent/"]  # the interface called (RFC 8707)
    assert asked["scope"] == ["notes:read"]  # the least the card's requirement names
    at_vendor = httpx.get(authorize, cookies=vendor.login(as_user), timeout=30, verify=client_tls())
    assert at_vendor.status_code in (302, 303), at_vendor.text
    done = console.get(at_vendor.headers["location"].removeprefix(gateway.url))
    assert done.status_code == 303, done.text
    assert done.headers["location"].endswith(f"/ui/connections?connected={AGENT}")


async def _client(gateway: Gateway, token: str, http: httpx.AsyncClient, streaming: bool) -> Any:
    factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
    return await factory.create_from_url(f"{gateway.url}/a2a/{AGENT}")


def send(gateway: Gateway, token: str, *, streaming: bool = False, skill: str = "whoami") -> Task:
    """A message for ``skill``; the task it is answered with (its last state)."""

    async def run() -> Task:
        message = Message(
            message_id=f"m-{time.monotonic_ns()}", role=Role.ROLE_USER, parts=[Part(text="hi")]
        )
        message.metadata.update({"skill": skill})
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
            client = await _client(gateway, token, http, streaming)
            task: Task | None = None
            async for event in client.send_message(SendMessageRequest(message=message)):
                if event.HasField("task"):
                    task = event.task
                elif event.HasField("status_update") and task is not None:
                    task.status.CopyFrom(event.status_update.status)
                elif event.HasField("artifact_update") and task is not None:
                    task.artifacts.append(event.artifact_update.artifact)
            assert task is not None
            return task

    return gateway.server.run(run())  # type: ignore[no-any-return]


def get_task(gateway: Gateway, token: str, task_id: str) -> Task:
    async def run() -> Task:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
            client = await _client(gateway, token, http, False)
            task: Task = await client.get_task(GetTaskRequest(id=task_id))
            return task

    return gateway.server.run(run())  # type: ignore[no-any-return]


def wait_for(gateway: Gateway, token: str, task_id: str, state: TaskState) -> Task:
    """The task once it is in ``state`` (the kit's one wait)."""

    def reached() -> Task | None:
        task = get_task(gateway, token, task_id)
        return task if task.status.state == state else None

    return waiting.wait_for(reached, seconds=30, what=f"task {task_id} in {state}")


def said(task: Task) -> str:
    return " ".join(p.text for p in task.status.message.parts)


def answer(task: Task) -> str:
    return " ".join(p.text for a in task.artifacts for p in a.parts)


def test_a_call_waits_for_its_users_consent_then_goes_on(gateway: Gateway, vendor: Vendor) -> None:
    before = len(vendor.calls)
    alice, bob = gateway.token("alice"), gateway.token("bob")
    held = send(gateway, alice)
    assert held.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
    connect_url = f"{gateway.url}/ui/connections/{AGENT}/connect"
    assert connect_url in said(held)
    assert held.metadata["connect_url"] == connect_url
    bobs = send(gateway, bob, streaming=True)
    assert bobs.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
    assert vendor.calls[before:] == []  # nothing reached the agent
    # Bob cannot read Alice's held task.
    with pytest.raises(Exception, match="not found"):
        get_task(gateway, bob, held.id)

    with browser(gateway, "alice") as console:
        connect(gateway, vendor, console, "alice@vendor")
    done = wait_for(gateway, alice, held.id, TaskState.TASK_STATE_COMPLETED)
    assert answer(done) == "you are alice@vendor"
    [call] = vendor.calls[before:]  # sent once, after consent, with Alice's own token
    assert call["subject"] == "alice@vendor"
    assert call["scopes"] == ["notes:read"]
    # Bob's call still waits for Bob: Alice's connection releases only hers.
    assert get_task(gateway, bob, bobs.id).status.state == TaskState.TASK_STATE_AUTH_REQUIRED

    with browser(gateway, "bob") as console:
        connect(gateway, vendor, console, "bob@vendor")
    done = wait_for(gateway, bob, bobs.id, TaskState.TASK_STATE_COMPLETED)
    assert answer(done) == "you are bob@vendor"
    assert [c["subject"] for c in vendor.calls[before:]] == ["alice@vendor", "bob@vendor"]


def test_a_connected_user_calls_at_once_and_the_audit_names_the_connection(
    gateway: Gateway, vendor: Vendor
) -> None:
    before = len(vendor.calls)
    amy = gateway.token("amy")
    with browser(gateway, "amy") as console:
        connect(gateway, vendor, console, "amy@vendor")
    for streaming in (False, True):
        task = send(gateway, amy, streaming=streaming)
        assert task.status.state == TaskState.TASK_STATE_COMPLETED, said(task)
        assert answer(task) == "you are amy@vendor"
    assert [c["subject"] for c in vendor.calls[before:]] == ["amy@vendor"] * 2
    with gateway.client() as admin:
        connections = admin.get("/connections", params={"all": "true"}).json()["items"]
        [listed] = [c for c in connections if c["subject"] == "amy"]
        assert (listed["upstream"], listed["subject"]) == (AGENT, "amy")
        params = {"kind": "all", "user": "amy", "agent": AGENT, "limit": "50"}
        records = admin.get("/audit", params=params).json()["items"]
        everything = admin.get("/audit", params={"kind": "all", "limit": 1000}).json()["items"]
    sent = [r for r in records if r["event"].startswith("a2a.Send") and r["outcome"] == "ok"]
    assert len(sent) == 2
    for record in sent:
        assert record["detail"].startswith(f"connection {listed['id']} (scopes notes:read")
    tokens = {c["token"] for c in vendor.calls[before:]}
    assert not [r for r in everything if any(t in str(r) for t in tokens)]


def test_an_mcp_client_calling_the_agents_skill_is_told_to_connect(
    gateway: Gateway, vendor: Vendor
) -> None:
    before = len(vendor.calls)
    token = gateway.token("carol")

    async def run() -> types.CallToolResult:
        async with mcp_client(gateway.url + "/mcp", token, "2026-07-28") as client:
            return await client.call_tool(f"{AGENT}__whoami", {"message": "hi"})

    result = gateway.server.run(run())
    assert result.is_error
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert f"/ui/connections/{AGENT}/connect" in text
    assert vendor.calls[before:] == []


def test_an_admin_cannot_approve_a_call_past_its_users_consent(
    gateway: Gateway, vendor: Vendor
) -> None:
    before = len(vendor.calls)
    held = send(gateway, gateway.token("dora"))
    approval = held.metadata["approval"]
    with gateway.client() as admin:
        refused = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("waits-for-consent")
        rejected = admin.post(f"/approvals/{approval}", json={"decision": "reject"})
        assert rejected.status_code == 200, rejected.text
    assert vendor.calls[before:] == []


def test_removing_the_agent_removes_and_revokes_its_connections(
    own_gateway: Gateway, own_vendor: Vendor
) -> None:
    gateway, vendor = own_gateway, own_vendor
    with browser(gateway, "erin") as console:
        connect(gateway, vendor, console, "erin@vendor")
    with gateway.client() as admin:
        assert len(admin.get("/connections", params={"all": "true"}).json()["items"]) == 1
        assert admin.delete(f"/agents/{AGENT}").status_code == 204
        assert admin.get("/connections", params={"all": "true"}).json()["items"] == []
    assert len(vendor.revoked) == 1


def test_a_token_revoked_at_the_agent_holds_the_next_call_until_the_user_connects_again(
    gateway: Gateway, vendor: Vendor
) -> None:
    fay = gateway.token("fay")
    with browser(gateway, "fay") as console:
        connect(gateway, vendor, console, "fay@vendor")
    assert send(gateway, fay).status.state == TaskState.TASK_STATE_COMPLETED
    for streaming in (False, True):
        # The vendor revokes Fay's access token on its side (an admin there).
        for used in {c["token"] for c in vendor.calls if c["subject"] == "fay@vendor"}:
            vendor.provider.access.pop(used, None)
        held = send(gateway, fay, streaming=streaming)
        assert held.status.state == TaskState.TASK_STATE_AUTH_REQUIRED, said(held)
        assert "no longer accepts your connection" in said(held)
        with gateway.client(fay) as as_fay:
            assert as_fay.get("/connections").json()["items"] == []  # the connection ended
        with browser(gateway, "fay") as console:
            connect(gateway, vendor, console, "fay@vendor")
        done = wait_for(gateway, fay, held.id, TaskState.TASK_STATE_COMPLETED)
        assert answer(done) == "you are fay@vendor"
    with gateway.client() as admin:
        params = {"kind": "all", "user": "fay"}
        audit = admin.get("/audit", params=params).json()["items"]
    assert sum(e["event"] == "connection.refused_upstream" for e in audit) == 2


ASK_AGENT_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ask-agent",
    "name": "Ask the vendor's agent who I am",
    "input": {"type": "object"},
    "steps": [{"id": "who", "call": {"agent": AGENT, "skill": "whoami"}, "input": "input"}],
    "output": "steps.who.output",
}


def test_a_flow_step_to_the_agent_waits_for_its_user_then_goes_on(
    gateway: Gateway, vendor: Vendor
) -> None:
    with gateway.client() as admin:
        registered = admin.post("/flows", json=ASK_AGENT_FLOW)
    assert registered.status_code == 201, registered.text
    before = len(vendor.calls)
    gus = gateway.token("gus")
    with gateway.client(gus) as client:
        started = client.post("/flows/ask-agent/runs", json={"input": {}}).json()

        def state(*states: str) -> dict[str, Any]:
            def reached() -> dict[str, Any] | None:
                body: dict[str, Any] = client.get(f"/flows/ask-agent/runs/{started['id']}").json()
                return body if body["state"] in states else None

            return waiting.wait_for(reached, 60, every=0.1, what=f"the run in {states}")

        assert state("auth_required", "failed", "completed")["state"] == "auth_required"
        assert vendor.calls[before:] == []
        with browser(gateway, "gus") as console:
            connect(gateway, vendor, console, "gus@vendor")
        done = state("completed", "failed")
    assert done["state"] == "completed", done
    assert "you are gus@vendor" in json.dumps(done["output"])
    assert [c["subject"] for c in vendor.calls[before:]] == ["gus@vendor"]


def test_a_2026_mcp_client_is_asked_to_connect_and_the_skill_call_completes(
    gateway: Gateway, vendor: Vendor
) -> None:
    before = len(vendor.calls)
    asked: list[types.ElicitRequestParams] = []

    def connect_hal() -> None:
        with browser(gateway, "hal") as console:
            connect(gateway, vendor, console, "hal@vendor")

    async def elicited(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        assert isinstance(params, types.ElicitRequestURLParams)
        assert params.url == f"{gateway.url}/ui/connections/{AGENT}/connect"
        await asyncio.to_thread(connect_hal)
        return types.ElicitResult(action="accept")

    hal = gateway.token("hal")  # made off the gateway's loop

    async def run() -> types.CallToolResult:
        async with mcp_client(
            gateway.url + "/mcp", hal, "2026-07-28", elicitation_callback=elicited
        ) as client:
            return await client.call_tool(f"{AGENT}__whoami", {"message": "hi"})

    result = gateway.server.run(run())
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert not result.is_error, text
    assert len(asked) == 1
    assert "you are hal@vendor" in text
    assert [c["subject"] for c in vendor.calls[before:]] == ["hal@vendor"]


def test_a_missing_scope_holds_the_call_and_asks_for_exactly_it(
    gateway: Gateway, vendor: Vendor
) -> None:
    before = len(vendor.calls)
    kim = gateway.token("kim")
    with browser(gateway, "kim") as console:
        connect(gateway, vendor, console, "kim@vendor")  # notes:read, the card's least
    for streaming in (False, True):
        held = send(gateway, kim, streaming=streaming, skill="write")
        assert held.status.state == TaskState.TASK_STATE_AUTH_REQUIRED, said(held)
        assert "needs scope notes:write" in said(held)
        link = held.metadata["connect_url"]
        assert parse_qs(urlparse(link).query)["scope"] == ["notes:read notes:write"]
        # The connection is kept for what it was granted.
        assert answer(send(gateway, kim)) == "you are kim@vendor"
        # The sweep does not release the call with the connection that lacked the scope.
        desk = gateway.server.app.state.switchboard.approvals
        gateway.server.run(desk.sweep_consents())
        still = get_task(gateway, kim, held.id)
        assert still.status.state == TaskState.TASK_STATE_AUTH_REQUIRED, said(still)
        with browser(gateway, "kim") as console:
            started = console.get(link.removeprefix(gateway.url))
            authorize = started.headers["location"]
            assert parse_qs(urlparse(authorize).query)["scope"] == ["notes:read notes:write"]
            at_vendor = httpx.get(
                authorize, cookies=vendor.login("kim@vendor"), timeout=30, verify=client_tls()
            )
            console.get(at_vendor.headers["location"].removeprefix(gateway.url))
        done = wait_for(gateway, kim, held.id, TaskState.TASK_STATE_COMPLETED)
        assert answer(done) == "kim@vendor wrote"
        # Next round starts from notes:read again.
        with gateway.client(kim) as as_kim:
            [mine] = as_kim.get("/connections").json()["items"]
            assert as_kim.delete(f"/connections/{mine['id']}").status_code == 204
        with browser(gateway, "kim") as console:
            connect(gateway, vendor, console, "kim@vendor")
    wrote = [
        c
        for c in vendor.calls[before:]
        if c["subject"] == "kim@vendor" and "notes:write" in c["scopes"]
    ]
    assert len(wrote) == 2


def test_a_held_call_whose_release_was_missed_goes_on_all_the_same(
    gateway: Gateway, vendor: Vendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is made while the call is being held (the callback's
    release saw no wait yet): the gateway's sweep finds it."""
    lee = gateway.token("lee")
    held = send(gateway, lee)
    desk = gateway.server.app.state.switchboard.approvals

    async def missed(*_: Any) -> int:
        return 0

    # The callback's release finds nothing (for this test: the gateway is shared).
    monkeypatch.setattr(desk, "connected", missed)
    with browser(gateway, "lee") as console:
        connect(gateway, vendor, console, "lee@vendor")
    done = wait_for(gateway, lee, held.id, TaskState.TASK_STATE_COMPLETED)
    assert answer(done) == "you are lee@vendor"


def test_a_held_call_is_given_up_when_its_requesters_token_expires(
    gateway: Gateway, vendor: Vendor
) -> None:
    # A token is usable until its exp plus the clock-skew leeway, on every
    # path (policies.tokens.usable_until): one minted in the past, three
    # seconds of that leeway left, as the door and the held call see it.
    before = len(vendor.calls)
    leeway = gateway.settings.token_leeway_seconds
    mia = gateway.mint(sub="mia", scopes="", ttl=3, now=time.time() - leeway)
    held = send(gateway, mia)
    later = gateway.token("mia")  # to read the task once the first token is gone
    done = wait_for(gateway, later, held.id, TaskState.TASK_STATE_REJECTED)
    assert "token expired before they connected" in said(done)
    assert vendor.calls[before:] == []


def test_a_task_of_an_agent_whose_connection_is_gone_says_so_with_the_link(
    gateway: Gateway, vendor: Vendor
) -> None:
    ned = gateway.token("ned")
    with browser(gateway, "ned") as console:
        connect(gateway, vendor, console, "ned@vendor")
    task = send(gateway, ned)
    with gateway.client() as admin:  # an admin revokes Ned's connection
        connections = admin.get("/connections", params={"all": "true"}).json()["items"]
        [his] = [c for c in connections if c["subject"] == "ned"]
        assert admin.delete(f"/connections/{his['id']}").status_code == 204
    with pytest.raises(Exception, match=f"/ui/connections/{AGENT}/connect") as refused:
        get_task(gateway, ned, task.id)
    assert "Internal" not in str(refused.value)


@pytest.fixture
def approving_gateway(own_vendor: Vendor, make_gateway: GatewayFactory) -> Gateway:
    """SQLite only: the policy asks an admin to approve every call to the agent."""
    policy = f"agents:\n  {AGENT}:\n    approval: true\n"
    return with_agent(make_gateway(None, policy=policy, secret_key=SECRET_KEY), own_vendor)


def test_an_approved_call_without_the_users_connection_fails_with_the_link(
    approving_gateway: Gateway, own_vendor: Vendor
) -> None:
    gateway, vendor = approving_gateway, own_vendor
    before = len(vendor.calls)
    oli = gateway.token("oli")
    held = send(gateway, oli)
    assert held.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
    with gateway.client() as admin:
        approved = admin.post(
            f"/approvals/{held.metadata['approval']}", json={"decision": "approve"}
        )
        assert approved.status_code == 200, approved.text
    done = wait_for(gateway, oli, held.id, TaskState.TASK_STATE_FAILED)
    assert f"/ui/connections/{AGENT}/connect" in said(done)
    assert vendor.calls[before:] == []


def test_an_admin_sets_a_client_registered_out_of_band_for_the_agent(
    own_gateway: Gateway, own_vendor: Vendor, database_url: str | None
) -> None:
    """For a vendor that offers neither dynamic registration nor client id
    metadata documents: the client an admin registered there by hand."""
    gateway, vendor = own_gateway, own_vendor
    vendor.dynamic_registration = False
    secret = "the-agents-client-secret-0123456789"
    redirect = f"{gateway.url}/ui/connections/{AGENT}/callback"
    vendor.preregister("gw-agent", secret, [redirect], auth_method="client_secret_basic")
    path = f"/agents/{AGENT}/oauth-client"
    with gateway.client() as admin, gateway.client(gateway.token("ivy")) as ivy:
        # Not for a non-admin, not for an agent that is not there, nothing half-set.
        assert ivy.put(path, json={"client_id": "mine"}).status_code == 403
        assert ivy.get(path).status_code == 403
        assert admin.put("/agents/nobody/oauth-client", json={"client_id": "x"}).status_code == 404
        for bad in (
            {},
            {"client_id": ""},
            {"client_id": "x" * 513},
            {"client_id": "x", "client_secret": ""},
            {"client_id": "x", "extra": 1},
            {"client_id": 7},
        ):
            assert admin.put(path, json=bad).status_code == 422, bad
        assert admin.get(path).status_code == 404
        put = admin.put(path, json={"client_id": "gw-agent", "client_secret": secret})
        assert put.status_code == 200, put.text
        shown = admin.get(path).json()
        assert (shown["client_id"], shown["client_secret"]) == ("gw-agent", True)
        assert secret not in put.text + json.dumps(shown)
        audit = admin.get("/audit", params={"kind": "all", "agent": AGENT}).json()["items"]
        assert any(r["event"] == "agent.oauth_client_set" for r in audit)
    url = database_url or f"sqlite:///{gateway.settings.data_dir / 'switchboard.db'}"
    engine = sa.create_engine(url.replace("+asyncpg", "").replace("+aiosqlite", ""))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM agent_oauth_clients")).all()
    engine.dispose()
    assert len(rows) == 1 and secret not in str(rows)

    jan = gateway.token("jan")
    with browser(gateway, "jan") as console:
        started = console.get(f"/ui/connections/{AGENT}/connect")
        assert parse_qs(urlparse(started.headers["location"]).query)["client_id"] == ["gw-agent"]
        connect(gateway, vendor, console, "jan@vendor")
    assert vendor.registrations == []
    task = send(gateway, jan)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, said(task)
    assert answer(task) == "you are jan@vendor"

    with gateway.client() as admin:
        assert admin.delete(path).status_code == 204
        assert admin.delete(path).status_code == 404
    # Without it, and without dynamic registration there, connecting says why.
    with browser(gateway, "kai") as console:
        refused = console.get(f"/ui/connections/{AGENT}/connect")
        assert refused.status_code == 502, refused.text
        assert "regist" in refused.text.lower()
