"""The playground in Chromium: from an agent's page, "Try" fills the form in;
the user sends a message and sees the agent's task, its answer and the trace."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from policies.scopes import ADMIN_SCOPE
from tests.browser.conftest import Deployment
from tests.support.a2a_agents import worker_agent
from tests.support.browser import Browser, console_errors, dev_login, fill, text_of
from tests.support.inspecting import Recorder
from tests.support.waiting import wait_for


def test_a_user_tries_an_agent_from_its_page(deployment: Deployment, browser: Browser) -> None:
    gateway = deployment.gateway
    seen = Recorder()
    builder = worker_agent(seen, name="Builder")
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            body = {"card_url": builder.url + "/.well-known/agent-card.json", "id": "builder"}
            assert admin.post("/agents", json=body).status_code == 201
        base = deployment.url
        dev_login(browser, base, "carol", "crm:read")
        browser.get(base + "/ui/agents/builder")
        browser.find_element(By.CSS_SELECTOR, "article.skill a.try").click()
        wait_for(lambda: "/ui/try?" in browser.current_url)
        assert seen.calls() == []  # opening the form sends nothing
        fill(browser, {"message": "task the shed"}, "#ask-agent")
        browser.find_element(By.CSS_SELECTOR, "#ask-agent button[type=submit]").click()
        wait_for(lambda: "done: the shed" in text_of(browser, "#answer"))
        assert "TASK_STATE_COMPLETED" in text_of(browser, "#task")
        assert len(text_of(browser, "#trace").split()[0]) == 32  # the trace id, as text
        assert browser.find_elements(By.CSS_SELECTOR, "#trace a") == []  # not an admin
        assert len(seen.calls()) == 1
        refused = [e for e in console_errors(browser) if "Content Security Policy" in e["message"]]
        assert refused == []  # no inline script or style on these pages
    finally:
        builder.stop()
