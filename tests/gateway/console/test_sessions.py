"""Console sessions in the database: only a hash of the cookie is stored, a
session ends at its expiry (and never outlives its token), logout deletes it;
the cookie's name and flags follow the public URL's scheme."""

from __future__ import annotations

from pathlib import Path

from fastapi import Response

from gateway.console.sessions import SessionStore
from gateway.console.web import Console
from gateway.settings import Settings
from gateway.storage.db import migrated
from gateway.storage.tables import console_sessions
from policies.tokens import Principal
from registry.tls import client_tls
from tests.support.clock import Clock

ALICE = Principal(subject="alice", issuer="https://idp.example", scopes=frozenset({"a", "b"}))


async def test_a_session_lasts_until_its_expiry_and_stores_no_cookie(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", None) as engine:
        store = SessionStore(engine, clock)
        cookie, user = await store.create(ALICE, 600)
        assert user.expires_at.timestamp() == clock.now + 600
        found = await store.get(cookie)
        assert found is not None and found.subject == "alice" and found.scopes == {"a", "b"}
        assert found.csrf == user.csrf and len(user.csrf) >= 43
        async with engine.connect() as conn:
            (row,) = (await conn.execute(console_sessions.select())).all()
        assert cookie not in repr(row) and row.id != cookie
        assert await store.get(cookie + "x") is None and await store.get(None) is None
        clock.now += 601
        assert await store.get(cookie) is None
        async with engine.connect() as conn:
            assert (await conn.execute(console_sessions.select())).all() == []


async def test_a_session_never_outlives_its_token_and_logout_deletes_it(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", None) as engine:
        store = SessionStore(engine, clock)
        token_ends = int(clock.now) + 120
        cookie, user = await store.create(
            Principal("erin", "https://idp.example", frozenset(), expires_at=token_ends), 3600
        )
        assert user.expires_at.timestamp() == token_ends
        other, _ = await store.create(ALICE, 3600)
        assert other != cookie  # every login a new id (no fixation)
        await store.delete(cookie)
        assert await store.get(cookie) is None
        assert await store.get(other) is not None


def test_the_cookie_is_host_prefixed_and_secure_on_https(tmp_path: Path) -> None:
    secure = Console(Settings(dev=True, data_dir=tmp_path, public_url="https://gw.example"))
    assert secure.session_cookie == "__Host-switchboard-session"
    response = Response()
    secure.set_cookie(response, secure.session_cookie, "v", 60)
    header = response.headers["set-cookie"]
    assert header.startswith("__Host-switchboard-session=v;")
    for flag in ("Secure", "HttpOnly", "Path=/", "SameSite=lax"):
        assert flag in header
    assert "Domain" not in header  # RFC 6265bis: a __Host- cookie names no Domain
    plain = Console(Settings(dev=True, data_dir=tmp_path, public_url="http://127.0.0.1:8080"))
    assert plain.session_cookie == "switchboard-session"


def test_a_dev_login_is_no_session_on_a_gateway_not_in_dev_mode(tmp_path: Path) -> None:
    """Red team: the dev login (any user, any scopes) is a `--dev` gateway's
    alone, like the dev issuer's tokens, which a gateway without `--dev`
    refuses. Its session, kept in the shared database, must not let its
    holder in once the gateway runs without `--dev` (a restart, another
    replica): what its token would not do there, its session does not."""
    import httpx

    from tests.support.console import dev_login
    from tests.support.gateway import start_gateway

    data = tmp_path / "data"
    dev = start_gateway(data, None, secret_key="s" * 40)
    try:
        with httpx.Client(base_url=dev.url, timeout=30, verify=client_tls()) as client:
            dev_login(client, "mallory", "switchboard:admin")
            cookie = client.cookies["switchboard-session"]
            assert client.get("/ui/audit").status_code == 200
    finally:
        dev.stop()
    strict = start_gateway(data, None, dev=False, secret_key="s" * 40)
    try:
        with httpx.Client(base_url=strict.url, timeout=30, verify=client_tls()) as client:
            client.cookies.set("switchboard-session", cookie)
            for path in ("/ui", "/ui/audit", "/ui/policy"):
                answer = client.get(path)
                assert answer.status_code == 303, (path, answer.text[:300])
                assert answer.headers["location"].startswith("/ui/login")
    finally:
        strict.stop()
