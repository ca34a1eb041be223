"""Step-up at a vendor's MCP server: a tool answers 403 ``insufficient_scope``
to a user's connection that lacks the scope (MCP authorization 2025-11-25,
"Scope Challenge Handling"), and the user is asked again for exactly what
they had plus what the server named -- with the vendor's own authorization
server (the `mcp` SDK's: `gateway.demo.vendor`), a real gateway on both
databases and the official MCP client.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from gateway.demo.vendor import Vendor
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.e2e.test_connected_accounts import (
    browser,
    call,
    connected_gateway,
    text_of,
    wait_for_tools,
)
from tests.support.gateway import Gateway, GatewayFactory

pytestmark = pytest.mark.vendor(scope_challenge=True)


@pytest.fixture
def gateway(vendor: Vendor, make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    running = connected_gateway(make_gateway, database_url)
    with running.client() as admin:
        registered = admin.post(
            "/mcp-servers",
            json={
                "name": "notes",
                "url": vendor.mcp_url,
                # The least its users need to start with.
                "credential": {"type": "user_oauth", "scope": "notes:read"},
            },
        )
    assert registered.status_code == 201, registered.text
    with browser(running, "admin", ADMIN_SCOPE) as console:
        connect(running, vendor, console, "admin@vendor", "/ui/connections/notes/connect")
    wait_for_tools(running, "notes")
    return running


def connect(
    gateway: Gateway, vendor: Vendor, console: httpx.Client, as_user: str, link: str
) -> list[str]:
    """Connect through ``link``; the scopes the authorization server was asked for."""
    started = console.get(link.removeprefix(gateway.url))
    assert started.status_code == 303, started.text
    authorize = started.headers["location"]
    asked = parse_qs(urlparse(authorize).query)["scope"][0].split()
    at_vendor = httpx.get(authorize, cookies=vendor.login(as_user), timeout=30, verify=client_tls())
    assert at_vendor.status_code in (302, 303), at_vendor.text
    done = console.get(at_vendor.headers["location"].removeprefix(gateway.url))
    assert done.status_code == 303, done.text
    return sorted(asked)


def test_a_missing_scope_asks_the_user_again_for_exactly_it(
    gateway: Gateway, vendor: Vendor
) -> None:
    ivan = gateway.token("ivan")
    with browser(gateway, "ivan") as console:
        asked = connect(gateway, vendor, console, "ivan@vendor", "/ui/connections/notes/connect")
    assert asked == ["notes:read"]

    refused = call(gateway, ivan, "notes__write_note", text="hi")
    assert refused.is_error
    said = text_of(refused)
    assert "needs scope notes:write" in said
    link = (refused.meta or {})["switchboard/connect_url"]
    assert link.startswith(gateway.url + "/ui/connections/notes/connect?scope=")
    assert parse_qs(urlparse(link).query)["scope"] == ["notes:read notes:write"]
    assert not [c for c in vendor.calls if c["tool"] == "write_note"]
    # The connection is kept for what it was granted.
    assert "ivan@vendor" in text_of(call(gateway, ivan, "notes__whoami"))

    with browser(gateway, "ivan") as console:
        asked = connect(gateway, vendor, console, "ivan@vendor", link)
    assert asked == ["notes:read", "notes:write"]
    assert text_of(call(gateway, ivan, "notes__write_note", text="hi")) == "noted: hi"
    [wrote] = [c for c in vendor.calls if c["tool"] == "write_note"]
    assert wrote["subject"] == "ivan@vendor"
    assert sorted(wrote["scopes"]) == ["notes:read", "notes:write"]
    with gateway.client() as admin:
        audit = admin.get("/audit", params={"user": "ivan", "limit": 100}).json()["items"]
    assert any(e["outcome"] == "insufficient_scope" for e in audit)


def test_a_step_up_link_with_a_malformed_scope_is_refused(gateway: Gateway) -> None:
    with browser(gateway, "judy") as console:
        refused = console.get('/ui/connections/notes/connect?scope=notes:read%20"x"')
    assert refused.status_code == 400
    assert "scope" in refused.text


def test_a_links_scope_is_kept_to_what_the_server_offers(gateway: Gateway, vendor: Vendor) -> None:
    # The vendor's authorization server lists `scopes_supported`
    # (notes:read, notes:write): a scope it does not offer is not asked for.
    link = "/ui/connections/notes/connect?scope=notes:write%20notes:admin%20payroll:read"
    with browser(gateway, "kim") as console:
        asked = connect(gateway, vendor, console, "kim@vendor", link)
    assert asked == ["notes:read", "notes:write"]
