"""Connected accounts end to end: a vendor whose MCP server trusts only its own
OAuth authorization server (both the official SDK's: `gateway.demo.vendor`),
a real gateway on both databases, users connecting through the console over
HTTP as a browser would, and the official MCP client calling through `/mcp`.

What must hold: each user's call reaches the vendor with that user's own
token and no other; a user who has not connected is told where to connect and
nothing is sent; tokens are refreshed with rotation; disconnecting revokes at
the vendor; a callback is accepted only in the session that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import mcp_types as types
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest, Task, TaskState
from google.protobuf.struct_pb2 import Struct, Value
from mcp import MCPError, UrlElicitationRequiredError
from mcp_types import URL_ELICITATION_REQUIRED

from gateway.cli import main
from gateway.connections.errors import UserCredentialUnavailable
from gateway.delegation.permits import Caller
from gateway.demo.vendor import Vendor
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support import waiting
from tests.support.console import dev_login
from tests.support.flows import wait_for_run
from tests.support.gateway import SECRET_KEY, Gateway, GatewayFactory
from tests.support.mcp_clients import mcp_client

POLICY = "agents: {}\n"
# Tokens shorter than the gateway's refresh margin: every call refreshes.
pytestmark = pytest.mark.vendor(access_seconds=30)


def connected_gateway(
    make_gateway: GatewayFactory, database_url: str | None, **settings: Any
) -> Gateway:
    """A gateway as in production (sealing on), which looks at its MCP servers often."""
    options: dict[str, Any] = {
        "policy": POLICY,
        "secret_key": SECRET_KEY,
        "mcp_probe_seconds": 0.5,
        "mcp_reconcile_seconds": 0.5,
    }
    return make_gateway(database_url, **(options | settings))


@pytest.fixture
def gateway(make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    return connected_gateway(make_gateway, database_url)


@contextlib.contextmanager
def browser(gateway: Gateway, subject: str, scopes: str = "") -> Iterator[httpx.Client]:
    """A browser logged in to the console (the dev login)."""
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as client:
        dev_login(client, subject, scopes)
        yield client


def connect(gateway: Gateway, vendor: Vendor, console: httpx.Client, as_user: str) -> str:
    """Connect through the console; the page the browser ends on."""
    started = console.get("/ui/connections/notes/connect")
    assert started.status_code == 303, started.text
    authorize = started.headers["location"]
    asked = parse_qs(urlparse(authorize).query)
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == [gateway.url + "/ui/connections/notes/callback"]
    assert asked["resource"] == [vendor.mcp_url]
    at_vendor = httpx.get(authorize, cookies=vendor.login(as_user), timeout=30, verify=client_tls())
    assert at_vendor.status_code in (302, 303), at_vendor.text
    back = at_vendor.headers["location"]
    assert back.startswith(gateway.url + "/ui/connections/notes/callback?")
    done = console.get(back.removeprefix(gateway.url))
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


def call(gateway: Gateway, token: str, tool: str, **arguments: Any) -> types.CallToolResult:
    async def run() -> types.CallToolResult:
        async with mcp_client(gateway.url + "/mcp", token, "2026-07-28") as client:
            return await client.call_tool(tool, arguments)

    return gateway.server.run(run())  # type: ignore[no-any-return]


def not_marked_sent(gateway: Gateway, token: str, tool: str) -> list[str]:
    """Call ``tool`` for ``token``'s user with an ``on_sending`` mark, as a
    flow step does; the send must be refused (no connection).
    What was marked."""
    marked: list[str] = []
    state = gateway.server.app.state.switchboard

    async def mark(_: Any) -> None:
        marked.append("sent")

    async def admitted_then_sent() -> Any:
        caller = Caller.user(await state.verifier.verify(token))
        return await state.mcp.call_tool(tool, {}, caller=caller, on_sending=mark)

    with pytest.raises(UserCredentialUnavailable):
        gateway.server.run(admitted_then_sent())
    return marked


def cli(gateway: Gateway, token: str, *command: str) -> str:
    """`switchboard ...` against the gateway, in this process; what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*command, "--gateway", gateway.url, "--token", token])
    assert code == 0, out.getvalue()
    return out.getvalue()


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def wait_for_tools(gateway: Gateway, server_id: str) -> list[dict[str, Any]]:
    """The server's tools once the gateway has listed them."""
    with gateway.client() as admin:

        def listed() -> list[dict[str, Any]] | None:
            return list(admin.get(f"/mcp-servers/{server_id}").json()["tools"]) or None

        return waiting.wait_for(listed, seconds=30, every=0.1, what=f"{server_id}'s tools listed")


def test_each_user_calls_with_their_own_account(
    gateway: Gateway, vendor: Vendor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with gateway.client() as admin:
        registered = admin.post(
            "/mcp-servers",
            json={"name": "notes", "url": vendor.mcp_url, "credential": {"type": "user_oauth"}},
        )
    assert registered.status_code == 201, registered.text
    record = registered.json()
    assert record["credential"]["type"] == "user_oauth"
    assert record["tools"] == []  # listed once the registrant connects
    assert "/ui/connections/notes/connect" in (record["health"]["detail"] or "")

    with browser(gateway, "admin", ADMIN_SCOPE) as admin_console:
        landed = connect(gateway, vendor, admin_console, "admin@vendor")
    assert landed.endswith("connected=notes")
    assert vendor.registrations, "the gateway registered itself (RFC 7591)"
    tools = wait_for_tools(gateway, "notes")
    assert {t["name"] for t in tools} == {"whoami", "write_note"}
    assert all(t["state"] == "approved" for t in tools)  # the admin's own first listing

    alice = gateway.token("alice")
    seen = len(vendor.calls)
    refused = call(gateway, alice, "notes__whoami")
    assert refused.is_error
    assert gateway.url + "/ui/connections/notes/connect" in text_of(refused)
    assert len(vendor.calls) == seen, "nothing is sent for a user without a connection"
    # A caller that marks the call sent (a flow step) is not told it will be:
    # the user's credential is looked for first.
    marked = not_marked_sent(gateway, alice, "notes__whoami")
    assert marked == [] and len(vendor.calls) == seen

    with browser(gateway, "alice") as alice_console:
        connect(gateway, vendor, alice_console, "alice@vendor")
    answer = call(gateway, alice, "notes__whoami")
    assert not answer.is_error, text_of(answer)
    assert json.loads(text_of(answer))["subject"] == "alice@vendor"
    again = call(gateway, alice, "notes__whoami")
    assert json.loads(text_of(again))["subject"] == "alice@vendor"
    refreshes = [r for r in vendor.token_requests if r.get("grant_type") == "refresh_token"]
    assert len(refreshes) >= 2, "a 30 s token is refreshed before each call"
    assert len({r["refresh_token"] for r in refreshes}) == len(refreshes), "rotated, never reused"

    admin_answer = call(gateway, gateway.token("admin", ADMIN_SCOPE), "notes__whoami")
    assert json.loads(text_of(admin_answer))["subject"] == "admin@vendor"

    # The CLI over the API: Alice's own, and everyone's for an admin.
    listed = cli(gateway, alice, "connections", "list")
    assert "notes" in listed
    assert "alice" in listed
    assert "admin (" not in listed
    everyone = cli(gateway, gateway.token("admin", ADMIN_SCOPE), "connections", "list", "--all")
    assert "alice (" in everyone
    assert "admin (" in everyone

    # The API lists each user's own; another user's is "not found".
    with gateway.client(alice) as as_alice:
        mine = as_alice.get("/connections").json()["items"]
        assert [(c["upstream"], c["subject"]) for c in mine] == [("notes", "alice")]
        assert "token" not in json.dumps(mine).replace("token_endpoint", "")
        assert as_alice.get("/connections?all=true").status_code == 403
    with gateway.client(gateway.token("bob")) as as_bob:
        assert as_bob.delete(f"/connections/{mine[0]['id']}").status_code == 404
    with gateway.client(alice) as as_alice:
        assert as_alice.delete(f"/connections/{mine[0]['id']}").status_code == 204
    assert vendor.revoked, "disconnecting revokes at the vendor (RFC 7009)"
    after = call(gateway, alice, "notes__whoami")
    assert after.is_error
    assert "/ui/connections/notes/connect" in text_of(after)
    with gateway.client() as as_admin:
        audit = as_admin.get("/audit", params={"kind": "all", "user": "alice"}).json()
    outcomes = {(e["event"], e["outcome"]) for e in audit["items"]}
    assert ("connection.created", "ok") in outcomes
    assert ("connection.revoked", "ok") in outcomes
    assert any(outcome == "connection_required" for _, outcome in outcomes)
    # Each call's record names the connection it used, by id and fingerprint.
    made = [
        e
        for e in audit["items"]
        if (e["event"], e["outcome"], e["subject"]) == ("mcp", "ok", "alice")
    ]
    assert made
    assert all(f"connection {mine[0]['id']}" in (e["detail"] or "") for e in made), made
    # No token the vendor issued appears in the audit, nor in any log line.
    issued = {c["token"] for c in vendor.calls}
    issued |= {r["refresh_token"] for r in refreshes} | set(vendor.revoked)
    everything = json.dumps(audit) + "\n".join(r.getMessage() for r in caplog.records)
    assert len(caplog.records) > 100  # the run's logs were seen
    leaks = [
        (r.name, r.getMessage()[:200])
        for r in caplog.records
        if any(token in r.getMessage() for token in issued)
    ]
    assert not leaks
    assert not [token for token in issued if token in everything]


def test_a_callback_counts_only_in_the_session_that_started_it(
    gateway: Gateway, vendor: Vendor
) -> None:
    with gateway.client() as admin:
        registered = admin.post(
            "/mcp-servers",
            json={"name": "notes", "url": vendor.mcp_url, "credential": {"type": "user_oauth"}},
        )
    assert registered.status_code == 201, registered.text
    with browser(gateway, "mallory") as mallory:
        started = mallory.get("/ui/connections/notes/connect")
    at_vendor = httpx.get(
        started.headers["location"],
        cookies=vendor.login("mallory@vendor"),
        timeout=30,
        verify=client_tls(),
    )
    callback = at_vendor.headers["location"].removeprefix(gateway.url)
    # Alice's browser is lured to Mallory's callback: it would connect Alice's
    # gateway account to Mallory's account at the vendor.
    with browser(gateway, "alice") as alice:
        lured = alice.get(callback)
    assert lured.status_code == 400
    assert "no connection is under way" in lured.text
    with gateway.client(gateway.token("alice")) as as_alice:
        assert as_alice.get("/connections").json()["items"] == []


def test_an_authorization_server_without_pkce_is_refused(gateway: Gateway) -> None:
    with Vendor(pkce_methods=()) as no_pkce:
        with gateway.client() as admin:
            registered = admin.post(
                "/mcp-servers",
                json={
                    "name": "notes",
                    "url": no_pkce.mcp_url,
                    "credential": {"type": "user_oauth"},
                },
            )
        assert registered.status_code == 201, registered.text
        with browser(gateway, "alice") as alice:
            refused = alice.get("/ui/connections/notes/connect")
        assert refused.status_code == 502
        assert "PKCE" in refused.text
        assert no_pkce.authorize_requests == []


def register_notes(gateway: Gateway, vendor: Vendor) -> None:
    with gateway.client() as admin:
        registered = admin.post(
            "/mcp-servers",
            json={"name": "notes", "url": vendor.mcp_url, "credential": {"type": "user_oauth"}},
        )
    assert registered.status_code == 201, registered.text
    with browser(gateway, "admin", ADMIN_SCOPE) as admin_console:
        connect(gateway, vendor, admin_console, "admin@vendor")
    wait_for_tools(gateway, "notes")


class Connecting:
    """An MCP client's elicitation handler that, asked to open the connect
    page, connects the user's account there (as their browser would) and
    accepts; it keeps what it was asked."""

    def __init__(self, gateway: Gateway, vendor: Vendor, user: str) -> None:
        self.gateway, self.vendor, self.user = gateway, vendor, user
        self.asked: list[types.ElicitRequestParams] = []

    def _connect(self) -> None:
        with browser(self.gateway, self.user) as console:
            connect(self.gateway, self.vendor, console, f"{self.user}@vendor")

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        assert isinstance(params, types.ElicitRequestURLParams)
        assert params.url == self.gateway.url + "/ui/connections/notes/connect"
        # The gateway's page is served on the loop this handler runs on.
        await asyncio.to_thread(self._connect)
        return types.ElicitResult(action="accept")


def test_a_2026_client_is_asked_to_connect_and_the_call_completes(
    gateway: Gateway, vendor: Vendor
) -> None:
    register_notes(gateway, vendor)
    asker = Connecting(gateway, vendor, "carol")
    token = gateway.token("carol")

    async def run() -> types.CallToolResult:
        async with mcp_client(
            gateway.url + "/mcp",
            token,
            "2026-07-28",
            elicitation_callback=asker,
        ) as client:
            return await client.call_tool("notes__whoami", {})

    result = gateway.server.run(run())
    assert len(asker.asked) == 1
    assert not result.is_error, text_of(result)
    assert json.loads(text_of(result))["subject"] == "carol@vendor"
    # One call reached the vendor: the one after consent, with Carol's token.
    assert [c["tool"] for c in vendor.calls if c["subject"] == "carol@vendor"] == ["whoami"]


def test_a_2025_client_gets_the_url_elicitation_error(gateway: Gateway, vendor: Vendor) -> None:
    register_notes(gateway, vendor)
    asker = Connecting(gateway, vendor, "dave")
    token = gateway.token("dave")

    async def run() -> None:
        async with mcp_client(
            gateway.url + "/mcp", token, "legacy", elicitation_callback=asker
        ) as client:
            with pytest.raises(MCPError) as raised:
                await client.call_tool("notes__whoami", {})
            assert raised.value.error.code == URL_ELICITATION_REQUIRED
            [asked] = UrlElicitationRequiredError.from_error(raised.value.error).elicitations
            assert asked.url == gateway.url + "/ui/connections/notes/connect"
            await asyncio.to_thread(asker._connect)
            again = await client.call_tool("notes__whoami", {})
            assert json.loads(text_of(again))["subject"] == "dave@vendor"

    gateway.server.run(run())


def test_only_an_admin_registers_a_user_oauth_server(gateway: Gateway, vendor: Vendor) -> None:
    with gateway.client(gateway.token("mallory", "switchboard:mcp-register")) as mallory:
        refused = mallory.post(
            "/mcp-servers",
            json={"name": "notes", "url": vendor.mcp_url, "credential": {"type": "user_oauth"}},
        )
    assert refused.status_code == 403, refused.text
    assert "user_oauth" in refused.json()["detail"]
    with gateway.client() as admin:
        assert admin.get("/mcp-servers/notes").status_code == 404


def test_removing_the_server_removes_and_revokes_its_connections(
    gateway: Gateway, vendor: Vendor
) -> None:
    register_notes(gateway, vendor)
    with gateway.client() as admin:
        assert admin.get("/connections", params={"all": "true"}).json()["items"]
        assert admin.delete("/mcp-servers/notes").status_code == 204
        assert admin.get("/connections", params={"all": "true"}).json()["items"] == []
    assert vendor.revoked, "the removed server's connections are revoked at its AS"


def test_a_token_revoked_at_the_vendor_asks_the_user_to_connect_again(
    gateway: Gateway,
) -> None:
    with Vendor(access_seconds=3600) as vendor:  # long-lived: no refresh before the call
        register_notes(gateway, vendor)
        with browser(gateway, "erin") as console:
            connect(gateway, vendor, console, "erin@vendor")
        erin = gateway.token("erin")
        first = json.loads(text_of(call(gateway, erin, "notes__whoami")))
        assert first["subject"] == "erin@vendor"
        # The vendor revokes Erin's access token on its side (an admin there, say).
        [used] = [c["token"] for c in vendor.calls if c["subject"] == "erin@vendor"]
        del vendor.provider.access[used]
        refused = call(gateway, erin, "notes__whoami")
        assert refused.is_error
        assert "no longer accepts your connection" in text_of(refused)
        assert "/ui/connections/notes/connect" in text_of(refused)
        with gateway.client(erin) as as_erin:
            assert as_erin.get("/connections").json()["items"] == []
        with browser(gateway, "erin") as console:  # and connecting again works
            connect(gateway, vendor, console, "erin@vendor")
        again = json.loads(text_of(call(gateway, erin, "notes__whoami")))
        assert again["subject"] == "erin@vendor"
    with gateway.client() as admin:
        audit = admin.get("/audit", params={"kind": "all", "user": "erin"}).json()["items"]
    assert any(e["event"] == "connection.refused_upstream" for e in audit)


WHOAMI_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ask-notes",
    "name": "Ask the notes vendor who I am",
    "input": {"type": "object"},
    "steps": [{"id": "who", "call": {"tool": "notes__whoami"}, "input": "input"}],
    "output": "steps.who.output",
}


def run_state(gateway: Gateway, token: str, run: dict[str, Any], *states: str) -> dict[str, Any]:
    with gateway.client(token) as client:
        return wait_for_run(client, run, *states, seconds=60)


def test_a_flow_run_waits_for_its_user_to_connect_then_goes_on(
    gateway: Gateway, vendor: Vendor
) -> None:
    register_notes(gateway, vendor)
    with gateway.client() as admin:
        registered = admin.post("/flows", json=WHOAMI_FLOW)
    assert registered.status_code == 201, registered.text
    gina = gateway.token("gina")
    with gateway.client(gina) as client:
        started = client.post("/flows/ask-notes/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    held = run_state(gateway, gina, started.json(), "auth_required", "failed", "completed")
    assert held["state"] == "auth_required", held
    assert not [c for c in vendor.calls if c["subject"] == "gina@vendor"]
    # Another user connecting does not move Gina's run.
    with browser(gateway, "hal") as console:
        connect(gateway, vendor, console, "hal@vendor")
    assert run_state(gateway, gina, started.json(), "auth_required")["state"] == "auth_required"
    with browser(gateway, "gina") as console:
        connect(gateway, vendor, console, "gina@vendor")
    done = run_state(gateway, gina, started.json(), "completed", "failed")
    assert done["state"] == "completed", done
    assert json.loads(done["output"])["subject"] == "gina@vendor"
    [who] = [c for c in vendor.calls if c["subject"] == "gina@vendor"]
    assert who["tool"] == "whoami"  # sent once, after consent


def test_a_maps_items_wait_for_one_connection_and_all_go_on(
    gateway: Gateway, vendor: Vendor
) -> None:
    """Every item of a map needs Gina to connect first: the run waits once,
    and her one connection lets every item go on (each is made again at its
    turn, not left waiting for a connection of its own)."""
    register_notes(gateway, vendor)
    each = {
        **WHOAMI_FLOW,
        "id": "ask-notes",
        "steps": [
            {
                "id": "who",
                "map": {"over": "[`1`, `2`, `3`]", "call": {"tool": "notes__whoami"}},
            }
        ],
    }
    with gateway.client() as admin:
        registered = admin.post("/flows", json=each)
    assert registered.status_code == 201, registered.text
    gina = gateway.token("gina")
    with gateway.client(gina) as client:
        started = client.post("/flows/ask-notes/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    held = run_state(gateway, gina, started.json(), "auth_required", "failed", "completed")
    assert held["state"] == "auth_required", held
    assert held["current_step"] == "who[0]"
    with browser(gateway, "gina") as console:
        connect(gateway, vendor, console, "gina@vendor")
    done = run_state(gateway, gina, started.json(), "completed", "failed")
    assert done["state"] == "completed", done
    assert [json.loads(o)["subject"] for o in done["output"]] == ["gina@vendor"] * 3
    # Each item sent once, after the connection.
    assert len([c for c in vendor.calls if c["subject"] == "gina@vendor"]) == 3


def test_an_a2a_caller_gets_a_task_in_auth_required(gateway: Gateway, vendor: Vendor) -> None:
    """The vendor's server served as an A2A agent (`/a2a/notes`), with the a2a-sdk client."""
    register_notes(gateway, vendor)
    token = gateway.token("ivy")

    async def send() -> Task:
        data = Struct()
        data.update({"tool": "whoami", "arguments": {}})
        message = Message(
            message_id="m-whoami", role=Role.ROLE_USER, parts=[Part(data=Value(struct_value=data))]
        )
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=client_tls()
        ) as http:
            factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
            client = await factory.create_from_url(gateway.url + "/a2a/notes")
            [event] = [e async for e in client.send_message(SendMessageRequest(message=message))]
            assert event.HasField("task"), event
            return event.task

    task = gateway.server.run(send())
    assert task.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
    said = " ".join(p.text for p in task.status.message.parts)
    assert gateway.url + "/ui/connections/notes/connect" in said
    assert not [c for c in vendor.calls if c["subject"] == "ivy@vendor"]
