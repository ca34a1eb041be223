"""The Connections page, in Chromium: a user connects their account at a vendor
whose MCP server trusts only its own logins (the consent round trip through
the vendor's authorization server and back), sees its scopes, expiry and
last use, and disconnects; an admin sees who is connected to what -- never
a token -- and revokes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from selenium.webdriver.common.by import By

from gateway.demo.vendor import Vendor
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.browser import Browser, dev_login, text_of
from tests.support.gateway import Gateway, start_gateway
from tests.support.waiting import wait_for


@dataclass
class Consent:
    gateway: Gateway
    vendor: Vendor


@pytest.fixture(scope="module")
def consent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consent]:
    root = tmp_path_factory.mktemp("consent")
    (root / "policy.yaml").write_text("agents: {}\n")
    vendor = Vendor().start()
    gateway = start_gateway(
        Path(root / "data"), None, policy_file=root / "policy.yaml", mcp_reconcile_seconds=0.5
    )
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            body = {"name": "notes", "url": vendor.mcp_url, "credential": {"type": "user_oauth"}}
            assert admin.post("/mcp-servers", json=body).status_code == 201
        yield Consent(gateway, vendor)
    finally:
        gateway.server.stop()
        vendor.stop()


def log_in_at_the_vendor(browser: Browser, vendor: Vendor, user: str) -> None:
    """The vendor's own login, as a cookie on its origin."""
    browser.get(vendor.url + "/.well-known/oauth-authorization-server")
    [(name, value)] = vendor.login(user).items()
    browser.add_cookie({"name": name, "value": value, "path": "/"})


def connect_in_the_console(browser: Browser, consent: Consent, subject: str) -> None:
    base = consent.gateway.url
    browser.get(base + "/ui/connections")
    row = browser.find_element(By.CSS_SELECTOR, "#connections tbody tr")
    assert "not connected" in row.text
    row.find_element(By.LINK_TEXT, "Connect").click()
    # To the vendor's authorization server and back, by redirects alone.
    wait_for(lambda: browser.find_elements(By.ID, "connected"))
    assert browser.current_url == base + "/ui/connections?connected=notes"


def whoami(consent: Consent, user: str) -> str:
    token = consent.gateway.token(user)

    async def call() -> types.CallToolResult:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, verify=client_tls())
        async with (
            http,
            Client(
                streamable_http_client(consent.gateway.url + "/mcp", http_client=http),
                mode="2026-07-28",
            ) as client,
        ):
            return await client.call_tool("notes__whoami", {})

    result = asyncio.run(call())
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_connect_see_and_disconnect_in_the_console(browser: Browser, consent: Consent) -> None:
    base = consent.gateway.url
    dev_login(browser, base, "admin", ADMIN_SCOPE)
    log_in_at_the_vendor(browser, consent.vendor, "admin@vendor")
    connect_in_the_console(browser, consent, "admin")
    with consent.gateway.client(consent.gateway.token("admin", ADMIN_SCOPE)) as admin:
        wait_for(
            lambda: admin.get("/mcp-servers/notes").json()["tools"],
            every=0.1,
            what="the tools were never listed",
        )

    dev_login(browser, base, "grace", "")
    log_in_at_the_vendor(browser, consent.vendor, "grace@vendor")
    connect_in_the_console(browser, consent, "grace")
    assert json.loads(whoami(consent, "grace"))["subject"] == "grace@vendor"
    browser.get(base + "/ui/connections")
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#connections tbody tr td")]
    upstream, status, scopes, expires, used = cells[:5]
    assert (upstream, status.split()[0]) == ("notes MCP server", "connected")
    assert scopes == "notes:read notes:write"
    assert expires.startswith("20") and used.startswith("20"), cells  # dates, not the dash of none
    assert not browser.find_elements(By.ID, "everyone"), "not an admin: only her own"

    # An admin sees who is connected to what, never a token, and revokes.
    dev_login(browser, base, "admin", ADMIN_SCOPE)
    browser.get(base + "/ui/connections")
    everyone = text_of(browser, "#everyone")
    assert "grace" in everyone and "admin" in everyone
    page = browser.page_source
    assert not any(call["token"] in page for call in consent.vendor.calls)
    rows = browser.find_elements(By.CSS_SELECTOR, "#everyone tbody tr")
    [grace] = [r for r in rows if r.text.startswith("grace")]
    revoked_before = len(consent.vendor.revoked)
    grace.find_element(By.CSS_SELECTOR, "form.disconnect button").click()
    wait_for(lambda: browser.find_elements(By.ID, "removed"))
    assert "grace" not in text_of(browser, "#everyone")
    assert len(consent.vendor.revoked) == revoked_before + 1
    refused = whoami(consent, "grace")
    assert "/ui/connections/notes/connect" in refused
