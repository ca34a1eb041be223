"""Logging in to the console with an OpenID Connect issuer (authorization code
+ PKCE), over real HTTP: the token is verified like a bearer token, never
stored, and a callback is good once, for the browser that started the login.
A login under way is kept in the browser, sealed: an anonymous visit writes
nothing, and a login cookie changed, expired or sealed elsewhere is none."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.console.login_state import LOGIN_SECONDS, Login, LoginSeal
from gateway.storage.tables import console_sessions
from registry.tls import client_tls
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
    answer = httpx.get(url, verify=client_tls())
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
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as browser:
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
    stored = repr(rows(gateway, console_sessions))
    assert access_token not in stored and access_token.split(".")[2] not in stored


def test_a_callback_is_good_once_and_only_in_the_browser_that_started_it(setup: Setup) -> None:
    gateway = setup.gateway
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as browser:
        url, _ = start_login(browser)
        callback = at_issuer(url)
        # Another browser (a login CSRF: the attacker's code in the victim's browser).
        with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as other:
            other.get("/ui/login")
            assert other.get(callback).status_code == 400
        # A forged state.
        forged = callback.replace("state=", "state=x")
        assert browser.get(forged).status_code == 400
        login_cookie = browser.cookies["switchboard-login"]
        assert browser.get(callback).status_code == 303
        # Replayed: the login cookie is gone with the login.
        browser.cookies.delete("switchboard-session")
        assert browser.get(callback).status_code == 400
        # Replayed with a copy of it: the issuer's code was good once.
        browser.cookies.set("switchboard-login", login_cookie)
        replayed = browser.get(callback)
        assert replayed.status_code == 502 and "switchboard-session" not in replayed.cookies
    assert len(rows(gateway, console_sessions)) == 1


def test_an_anonymous_visit_writes_nothing_and_a_login_cookie_cannot_be_made(
    setup: Setup,
) -> None:
    gateway = setup.gateway
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as browser:
        for _ in range(5):
            assert browser.get("/ui/agents").status_code in (303, 307)
            assert browser.get("/ui/login").status_code == 200
        url, _ = start_login(browser)
        callback = at_issuer(url)
        sealed = browser.cookies["switchboard-login"]
        assert "state" not in sealed and _query(callback)["state"] not in sealed  # encrypted
        # Changed by a byte, sealed under another secret, or sealed too long
        # ago: no login under way.
        changed = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
        state = _query(callback)["state"]
        made = Login("c", state, "v" * 43, "/ui")
        elsewhere = LoginSeal("another secret of forty characters......").seal(made)
        own = LoginSeal("s" * 40)  # the gateway's secret_key: its own seal works
        for cookie in (changed, elsewhere, "", "not a seal"):
            browser.cookies.set("switchboard-login", cookie)
            answer = browser.get(callback)
            assert answer.status_code == 400 and "no login is under way" in answer.text, cookie
        stale = own._fernet.encrypt_at_time(
            b'{"csrf": "c", "state": "%s", "code_verifier": "%s", "return_to": "/ui"}'
            % (state.encode(), b"v" * 43),
            int(time.time()) - LOGIN_SECONDS - 5,
        ).decode()
        browser.cookies.set("switchboard-login", stale)
        assert browser.get(callback).status_code == 400
        assert own.open(own.seal(made)) == made
        browser.cookies.set("switchboard-login", sealed)
        assert browser.get(callback).status_code == 303
    # Only the session the login made: nothing for the anonymous visits.
    assert len(rows(gateway, console_sessions)) == 1


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_token_for_another_audience_logs_nobody_in(setup: Setup) -> None:
    setup.issuer.audience = "https://elsewhere.example"
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as browser:
        url, _ = start_login(browser)
        answer = browser.get(at_issuer(url))
        assert answer.status_code == 401
        assert "audience" in answer.text
        assert "switchboard-session" not in answer.headers.get("set-cookie", "")
    assert rows(setup.gateway, console_sessions) == []


def test_the_dev_login_is_not_there_outside_dev(setup: Setup) -> None:
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as browser:
        browser.get("/ui/login")
        answer = browser.post(
            "/ui/login/dev", data={"csrf": "x", "subject": "root", "scopes": "switchboard:admin"}
        )
        assert answer.status_code == 404
