"""An agent's page shows its credential to admins -- the client id and the
method, never the secret -- and nothing of it to anyone else; and its
health history."""

from __future__ import annotations

from tests.browser.conftest import Deployment
from tests.support.browser import Browser, dev_login, text_of
from tests.support.waiting import wait_for


def test_an_agents_credential_shows_its_kind_never_its_secret(
    deployment: Deployment, browser: Browser
) -> None:
    with deployment.gateway.client() as admin:
        issued = admin.post("/agents/worker/credentials")
        assert issued.status_code == 201, issued.text
    secret, client_id = issued.json()["client_secret"], issued.json()["client_id"]
    with deployment.gateway.client() as admin:
        wait_for(
            lambda: admin.get("/agents/worker/health").json(),
            seconds=20,
            every=0.2,
            what="no health check recorded",
        )
    base = deployment.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(base + "/ui/agents/worker")
    shown = text_of(browser, "#credential")
    assert client_id in shown and "client_secret" in shown
    assert secret not in browser.page_source
    assert "healthy" in text_of(browser, "#health") or "unknown" in text_of(browser, "#health")
    # Its health history: the first check's change from unknown.
    history = text_of(browser, "#health-history")
    assert "healthy" in history and "unknown" in history, history
    dev_login(browser, base, "bob", "crm:read")
    browser.get(base + "/ui/agents/worker")
    assert not text_of(browser, "#credential")
    assert secret not in browser.page_source
