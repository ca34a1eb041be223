"""Connected accounts against a second authorization server nobody here
wrote: Authlib's (`tests.support.authlib_vendor`), protecting an MCP server,
with a client registered there out of band (the first in the MCP
specification's order of client registration). Both databases.

What must hold with its reading of every request, not only the `mcp` SDK's:
PKCE S256, the RFC 9207 ``iss`` checked, each user's own token at the
server, refresh with rotation (the old refresh token is dead after one use),
and revocation when the user disconnects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.e2e.test_connected_accounts import (
    browser,
    call,
    connected_gateway,
    text_of,
    wait_for_tools,
)
from tests.support.authlib_vendor import AuthlibVendor
from tests.support.gateway import Gateway, GatewayFactory

CLIENT_ID, CLIENT_SECRET = "switchboard", "a-client-secret-at-authlib"


@pytest.fixture
def vendor() -> Iterator[AuthlibVendor]:
    # Tokens shorter than the gateway's refresh margin: every call refreshes.
    with AuthlibVendor(access_seconds=30) as running:
        yield running


@pytest.fixture
def gateway(
    vendor: AuthlibVendor, make_gateway: GatewayFactory, database_url: str | None
) -> Gateway:
    running = connected_gateway(make_gateway, database_url)
    vendor.preregister(CLIENT_ID, CLIENT_SECRET, running.url + "/ui/connections/notes/callback")
    with running.client() as admin:
        registered = admin.post(
            "/mcp-servers",
            json={
                "name": "notes",
                "url": vendor.mcp_url,
                "credential": {
                    "type": "user_oauth",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
            },
        )
    assert registered.status_code == 201, registered.text
    with browser(running, "admin", ADMIN_SCOPE) as console:
        connect(running, vendor, console, "admin@authlib")
    wait_for_tools(running, "notes")
    return running


def connect(gateway: Gateway, vendor: AuthlibVendor, console: httpx.Client, as_user: str) -> str:
    """Connect through the console; the ``iss`` the vendor's answer carried."""
    started = console.get("/ui/connections/notes/connect")
    assert started.status_code == 303, started.text
    authorize = started.headers["location"]
    assert authorize.startswith(vendor.url + "/oauth/authorize?")
    asked = parse_qs(urlparse(authorize).query)
    assert asked["client_id"] == [CLIENT_ID]
    assert asked["code_challenge_method"] == ["S256"]
    at_vendor = httpx.get(authorize, cookies=vendor.login(as_user), timeout=30, verify=client_tls())
    assert at_vendor.status_code == 302, at_vendor.text
    back = at_vendor.headers["location"]
    done = console.get(back.removeprefix(gateway.url))
    assert done.status_code == 303, done.text
    assert done.headers["location"].endswith("/ui/connections?connected=notes")
    return parse_qs(urlparse(back).query)["iss"][0]


def test_each_user_calls_with_their_own_token_refreshed_and_revoked(
    gateway: Gateway, vendor: AuthlibVendor
) -> None:
    with browser(gateway, "alice") as console:
        assert connect(gateway, vendor, console, "alice@authlib") == vendor.url
    with browser(gateway, "bob") as console:
        connect(gateway, vendor, console, "bob@authlib")
    alice, bob = gateway.token("alice"), gateway.token("bob")
    for _ in range(2):  # each call refreshes first (30 s tokens), with rotation
        assert json.loads(text_of(call(gateway, alice, "notes__whoami")))["subject"] == (
            "alice@authlib"
        )
        assert json.loads(text_of(call(gateway, bob, "notes__whoami")))["subject"] == (
            "bob@authlib"
        )
    refreshes = [r for r in vendor.token_requests if r.get("grant_type") == "refresh_token"]
    sent = [r["refresh_token"] for r in refreshes]
    assert len(sent) >= 4 and len(set(sent)) == len(sent), "a rotated token sent twice"
    assert all(r.get("code_verifier") is None for r in refreshes)
    codes = [r for r in vendor.token_requests if r.get("grant_type") == "authorization_code"]
    assert all(r.get("code_verifier") for r in codes)
    assert {c["subject"] for c in vendor.calls} == {"alice@authlib", "bob@authlib"}

    with gateway.client(alice) as as_alice:
        [mine] = as_alice.get("/connections").json()["items"]
        assert as_alice.delete(f"/connections/{mine['id']}").status_code == 204
    assert vendor.revoked, "the disconnected grant was revoked at the authorization server"
    refused = call(gateway, alice, "notes__whoami")
    assert refused.is_error and "/ui/connections/notes/connect" in text_of(refused)
    assert json.loads(text_of(call(gateway, bob, "notes__whoami")))["subject"] == "bob@authlib"


def test_an_answer_without_the_servers_iss_is_refused(
    gateway: Gateway, vendor: AuthlibVendor
) -> None:
    with browser(gateway, "carol") as console:
        started = console.get("/ui/connections/notes/connect")
        authorize = started.headers["location"]
        at_vendor = httpx.get(
            authorize, cookies=vendor.login("carol@authlib"), timeout=30, verify=client_tls()
        )
        back = at_vendor.headers["location"].replace(
            "iss=" + vendor.url.replace(":", "%3A").replace("/", "%2F"), "iss=https%3A%2F%2Fevil"
        )
        assert "iss=https%3A%2F%2Fevil" in back
        refused = console.get(back.removeprefix(gateway.url))
    assert refused.status_code == 502
    assert "RFC 9207" in refused.text
