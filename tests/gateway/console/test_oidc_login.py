"""Logging in to the console with an OpenID Connect issuer (authorization code
+ PKCE), over real HTTP: the token is verified like a bearer token, never
stored, and a callback is good once, for the browser that started the login."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.storage.tables import console_logins, console_sessions
from tests.support.gateway import Gateway, start_gateway
from tests.support.oidc_issuer import Issuer, oidc_issuer
from tests.support.servers import ServerThread, stop_all


@dataclass
class Setup:
    gateway: Gateway
    issuer: Issuer
    server: ServerThread


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    issuer = Issuer()
    server = oidc_issuer(issuer)
    gateway = start_gateway(
        tmp_path / "data",
        None,
        dev=False,
        secret_key="s" * 40,
        trusted_issuers=[{"issuer": server.url, "jwks_url": server.url + "/jwks"}],
        console={"oidc": {"issuer": server.url, "client_id": "console", "scope": "openid crm"}},
    )
    try:
        yield Setup(gateway, issuer, server)
    finally:
        stop_all(gateway.server, server)


def start_login(client: httpx.Client) -> tuple[str, dict[str, str]]:
    """To the issuer: the authorization URL, and its query."""
    page = client.get("/ui/login")
    assert page.status_code == 200 and "/ui/login/oidc" in page.text
    assert 'action="/ui/login/dev"' not in page.text  # not --dev
    answer = client.get("/ui/login/oidc")
    assert answer.status_code == 303
    url = answer.headers["location"]
    return url, {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def at_issuer(url: str) -> str:
    """The issuer logs its user in and sends the browser back: the callback URL."""
    answer = httpx.get(url)
    assert answer.status_code == 302
    return answer.headers["location"]


def rows(gateway: Gateway, table: object) -> list[dict[str, object]]:
    async def read() -> list[dict[str, object]]:
        engine = create_async_engine(gateway.settings.effective_database_url)
        try:
            async with engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(select(table))]  # type: ignore[call-overload]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_login_with_the_issuer_keeps_the_identity_and_never_the_token(setup: Setup) -> None:
    gateway = setup.gateway
    with httpx.Client(base_url=gateway.url, timeout=30) as browser:
        url, asked = start_login(browser)
        assert url.startswith(setup.server.url + "/authorize?")
        assert asked["response_type"] == "code"
        assert asked["code_challenge_method"] == "S256"
        assert len(asked["code_challenge"]) == 43  # base64url of SHA-256, no padding
        assert asked["resource"] == gateway.url  # RFC 8707: a token for the gateway
        assert asked["redirect_uri"] == gateway.url + "/ui/login/callback"
        assert asked["scope"] == "openid crm" and asked["client_id"] == "console"
        callback = at_issuer(url)
        answer = browser.get(callback)
        assert answer.status_code == 303 and answer.headers["location"] == "/ui"
        home = browser.get("/ui")
        assert home.status_code == 200 and "erin" in home.text
        # A non-admin: the admin pages refuse them.
        assert browser.get("/ui/audit").status_code == 403
    (token_request,) = setup.issuer.token_requests
    assert token_request["grant_type"] == "authorization_code"
    assert len(token_request["code_verifier"]) >= 43
    (access_token,) = setup.issuer.issued
    (session,) = rows(gateway, console_sessions)
    assert session["subject"] == "erin" and session["issuer"] == setup.server.url
    assert session["scopes"] == "crm:read"
    stored = repr(rows(gateway, console_sessions)) + repr(rows(gateway, console_logins))
    assert access_token not in stored and access_token.split(".")[2] not in stored
    # The code, used once, is gone from the issuer; the login row is gone too.
    assert rows(gateway, console_logins) == []


def test_a_callback_is_good_once_and_only_in_the_browser_that_started_it(setup: Setup) -> None:
    gateway = setup.gateway
    with httpx.Client(base_url=gateway.url, timeout=30) as browser:
        url, _ = start_login(browser)
        callback = at_issuer(url)
        # Another browser (a login CSRF: the attacker's code in the victim's browser).
        with httpx.Client(base_url=gateway.url, timeout=30) as other:
            other.get("/ui/login")
            assert other.get(callback).status_code == 400
        # A forged state.
        forged = callback.replace("state=", "state=x")
        assert browser.get(forged).status_code == 400
        assert browser.get(callback).status_code == 303
        # Replayed.
        browser.cookies.delete("switchboard-session")
        assert browser.get(callback).status_code == 400


def test_a_token_for_another_audience_logs_nobody_in(setup: Setup) -> None:
    setup.issuer.audience = "https://elsewhere.example"
    with httpx.Client(base_url=setup.gateway.url, timeout=30) as browser:
        url, _ = start_login(browser)
        answer = browser.get(at_issuer(url))
        assert answer.status_code == 401
        assert "audience" in answer.text
        assert "switchboard-session" not in answer.headers.get("set-cookie", "")
    assert rows(setup.gateway, console_sessions) == []


def test_the_dev_login_is_not_there_outside_dev(setup: Setup) -> None:
    with httpx.Client(base_url=setup.gateway.url, timeout=30) as browser:
        browser.get("/ui/login")
        answer = browser.post(
            "/ui/login/dev", data={"csrf": "x", "subject": "root", "scopes": "switchboard:admin"}
        )
        assert answer.status_code == 404
