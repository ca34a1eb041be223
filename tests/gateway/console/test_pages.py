"""The console's pages over real HTTP: status codes, security headers, cookie
flags, CSRF refusals, and what a non-admin is shown."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.console.web import CSP
from registry.tls import client_tls
from tests.support.console import browser, csrf_of, dev_login
from tests.support.gateway import Gateway, start_gateway

PAGES = [
    "/ui",
    "/ui/agents",
    "/ui/mcp",
    "/ui/flows",
    "/ui/approvals",
    "/ui/holds",
    "/ui/audit",
    "/ui/policy",
]
ADMIN_ONLY = ["/ui/holds", "/ui/audit", "/ui/policy"]


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Gateway]:
    """SQLite, and the local PostgreSQL: the sessions live in the gateway's database."""
    gw = start_gateway(tmp_path_factory.mktemp("console") / "data", module_database_url)
    yield gw
    gw.stop()


def test_a_page_without_a_session_goes_to_the_login_page(deployment: Gateway) -> None:
    with browser(deployment) as client:
        assert client.get("/").headers["location"] == "/ui"
        for path in PAGES:
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == f"/ui/login?next={path}"
            assert answer.headers["content-security-policy"] == CSP


def test_login_sets_a_session_cookie_and_every_page_answers_with_headers(
    deployment: Gateway,
) -> None:
    with browser(deployment) as client:
        login = client.get("/ui/login")
        assert login.status_code == 200
        assert "HttpOnly" in login.headers["set-cookie"]
        form = {"csrf": csrf_of(login.text), "subject": "root", "scopes": "switchboard:admin"}
        answer = client.post("/ui/login/dev", data=form)
        assert answer.status_code == 303
        cookies = answer.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("switchboard-session="))
        # http://127.0.0.1: no Secure, so no __Host- prefix (it would need Secure).
        assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/" in session
        assert "Max-Age=" in session
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            headers = page.headers
            assert headers["content-security-policy"] == CSP
            assert "'unsafe-inline'" not in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer"
            assert headers["cache-control"] == "no-store"
            assert headers["x-content-type-options"] == "nosniff"
            assert "<script" not in page.text and "style=" not in page.text
        css = client.get("/ui/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_logout_deletes_the_session_so_a_kept_cookie_is_worthless(deployment: Gateway) -> None:
    with browser(deployment) as client:
        csrf = dev_login(client, "carol", "switchboard:admin")
        kept = dict(client.cookies)
        answer = client.post("/ui/logout", data={"csrf": csrf})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    with httpx.Client(
        base_url=deployment.url, cookies=kept, timeout=30, verify=client_tls()
    ) as replay:
        assert replay.get("/ui").status_code == 303


def test_a_post_without_the_sessions_csrf_token_is_refused(deployment: Gateway) -> None:
    with browser(deployment) as client:
        dev_login(client, "root", "switchboard:admin")
        for data in ({"csrf": "forged"}, {}):
            answer = client.post("/ui/logout", data=data)
            assert answer.status_code == 403
            assert "CSRF" in answer.text
            assert answer.headers["content-security-policy"] == CSP
        # Still logged in: the forged logout did nothing.
        assert client.get("/ui").status_code == 200
        explain = client.post(
            "/ui/policy/explain", data={"csrf": "nope", "target": "x", "scopes": ""}
        )
        assert explain.status_code == 403


def test_the_dev_login_form_needs_its_own_token(deployment: Gateway) -> None:
    with browser(deployment) as client:
        client.get("/ui/login")
        answer = client.post("/ui/login/dev", data={"csrf": "x", "subject": "mallory"})
        assert answer.status_code == 403
        assert "switchboard-session" not in answer.headers.get("set-cookie", "")


def test_a_non_admin_is_refused_admin_pages(deployment: Gateway) -> None:
    with browser(deployment) as client:
        csrf = dev_login(client, "bob", "crm:read")
        for path in ADMIN_ONLY:
            answer = client.get(path)
            assert answer.status_code == 403, path
            assert "Admins only" in answer.text
        for path in ("/ui", "/ui/agents", "/ui/mcp", "/ui/flows", "/ui/approvals"):
            assert client.get(path).status_code == 200, path
        page = client.get("/ui").text
        assert 'href="/ui/audit"' not in page and 'href="/ui/policy"' not in page
        assert 'href="/ui/holds"' not in page
        explain = client.post(
            "/ui/policy/explain", data={"csrf": csrf, "target": "x", "scopes": "a"}
        )
        assert explain.status_code == 403


def test_a_return_path_stays_in_the_console(deployment: Gateway) -> None:
    with browser(deployment) as client:
        for next_path, expected in (
            ("/ui/agents", "/ui/agents"),
            ("https://evil.example/", "/ui"),
            ("//evil.example/ui", "/ui"),
            ("/ui//evil.example", "/ui"),
        ):
            login = client.get("/ui/login", params={"next": next_path})
            form = {"csrf": csrf_of(login.text), "subject": "root", "scopes": ""}
            answer = client.post("/ui/login/dev", data=form)
            assert answer.headers["location"] == expected
            client.cookies.clear()


def test_unknown_records_are_pages_not_json(deployment: Gateway) -> None:
    with browser(deployment) as client:
        dev_login(client, "root", "switchboard:admin")
        for path in (
            "/ui/agents/nobody",
            "/ui/approvals/apr_nothing",
            "/ui/mcp/nothing",
            "/ui/flows/nothing",
            "/ui/flows/nothing/runs/run_nothing",
        ):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html")
        assert client.get("/ui/audit", params={"since": "yesterday"}).status_code == 422
        assert client.get("/ui/audit/trace/" + "0" * 32).status_code == 404


def test_docs_render_from_the_gateway_alone(deployment: Gateway) -> None:
    with browser(deployment) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "<script>" not in page.text  # no inline script
        for src in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
            assert src in page.text
            assert client.get(src).status_code == 200
        assert client.get("/docs/init.js").status_code == 200
        assert "http://" not in page.text and "https://" not in page.text
        init = client.get("/docs/init.js").text
        assert "http" not in init and "validatorUrl: null" in init  # no swagger.io badge
        assert client.get("/redoc").status_code == 404
        document = client.get("/openapi.json").json()
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert "/a2a/{agent_id}" in document["info"]["description"]
        assert "/mcp" in document["info"]["description"]
