"""An agent registered over the API, found with the console's search."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from policies.scopes import ADMIN_SCOPE
from tests.browser.conftest import Deployment
from tests.support.a2a_agents import worker_agent
from tests.support.browser import Browser, dev_login, fill, text_of
from tests.support.waiting import wait_for


def test_register_over_the_api_then_find_it_in_the_console(
    deployment: Deployment, browser: Browser
) -> None:
    gateway = deployment.gateway
    stock = worker_agent(name="Stock Keeper")
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            body = {"card_url": stock.url + "/.well-known/agent-card.json", "id": "stock"}
            assert admin.post("/agents", json=body).status_code == 201
        base = deployment.url
        dev_login(browser, base, "root", "switchboard:admin")
        browser.get(base + "/ui/agents")
        fill(browser, {"q": "keeper"}, "form[role=search]")
        browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
        wait_for(lambda: "q=keeper" in browser.current_url)
        rows = browser.find_elements(By.CSS_SELECTOR, "#agents tbody tr")
        assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == ["Stock Keeper"]
        rows[0].find_element(By.TAG_NAME, "a").click()
        wait_for(lambda: browser.current_url == base + "/ui/agents/stock")
        assert "Stock Keeper" in browser.find_element(By.TAG_NAME, "h1").text
        assert '"name": "Stock Keeper"' in text_of(browser, "#card")
        assert "/a2a/stock" in text_of(browser)
        # A user the policy lets use it finds it too; nothing else is searched.
        dev_login(browser, base, "bob", "crm:read")
        browser.get(base + "/ui/agents?q=zebra")
        assert "No agent matches" in text_of(browser)
    finally:
        stock.stop()


def test_an_admin_registers_and_removes_an_agent_in_the_console(
    deployment: Deployment, browser: Browser
) -> None:
    stock = worker_agent(name="Stock Keeper")
    try:
        base = deployment.url
        dev_login(browser, base, "root", "switchboard:admin")
        browser.get(base + "/ui/agents")
        # A card that is not there: refused with the API's problem, nothing stored.
        fill(browser, {"card_url": base + "/nothing-here.json", "id": "keeper"}, "#register")
        browser.find_element(By.CSS_SELECTOR, "#register button").click()
        wait_for(lambda: "Register an agent" not in text_of(browser))
        assert "nothing-here" in text_of(browser) or "404" in text_of(browser)
        with deployment.gateway.client() as admin:
            assert admin.get("/agents/keeper").status_code == 404
        browser.get(base + "/ui/agents")
        card = stock.url + "/.well-known/agent-card.json"
        fill(browser, {"card_url": card, "id": "keeper"}, "#register")
        browser.find_element(By.CSS_SELECTOR, "#register button").click()
        wait_for(lambda: browser.current_url == base + "/ui/agents/keeper")
        assert "Stock Keeper" in browser.find_element(By.TAG_NAME, "h1").text
        browser.find_element(By.CSS_SELECTOR, "#remove button").click()
        wait_for(lambda: "removed=keeper" in browser.current_url)
        assert "Removed keeper" in text_of(browser)
        with deployment.gateway.client() as admin:
            assert admin.get("/agents/keeper").status_code == 404
    finally:
        stock.stop()
