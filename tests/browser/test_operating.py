"""Operating the gateway from the console, in Chromium: an admin registers a
vendor agent from its document, registers a flow (a refused document shown
back, each problem named), and issues an agent a credential (its secret on
that page only) and revokes it."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser.conftest import Deployment
from tests.support.agents import v03_card
from tests.support.browser import Browser, dev_login, fill, text_of
from tests.support.console_world import World
from tests.support.vendor_servers import API_KEY, chat_server
from tests.support.waiting import wait_for

CHAT = """\
id: console-chat
name: Console chat
upstream: {{type: openai, base_url: "{base}/v1", model: gpt-4o-mini}}
skills: [{{id: answer, name: Answer}}]
"""
FLOW = """\
format: switchboard.flow/v1
id: console-flow
name: Made in the console
input: {type: object}
steps: [{id: ask, checkpoint: {prompt: "Go on?", show: INPUT}}]
"""


def test_an_admin_registers_a_vendor_agent(deployment: Deployment, browser: Browser) -> None:
    chat, _, _ = chat_server()
    base = deployment.url
    try:
        dev_login(browser, base, "root", "switchboard:admin")
        browser.get(base + "/ui/agents")
        browser.find_element(By.ID, "vendor-link").click()
        wait_for(lambda: browser.current_url == base + "/ui/vendor-agents")
        document = CHAT.format(base=chat.url)
        fill(browser, {"document": document, "api_key": API_KEY}, "#register-vendor")
        browser.find_element(By.CSS_SELECTOR, "#register-vendor button").click()
        wait_for(lambda: browser.current_url == base + "/ui/agents/console-chat")
        assert "Console chat" in browser.find_element(By.TAG_NAME, "h1").text
        assert API_KEY not in browser.page_source
    finally:
        chat.stop()
        with deployment.gateway.client() as admin:
            admin.delete("/agents/console-chat")


def test_an_admin_registers_a_flow_after_a_refusal(world: World, browser: Browser) -> None:
    # The flow pages' gateway: DBOS is one per process, and `world` is the
    # browser suite's gateway that runs flows (tests/browser/conftest.py).
    base = world.url
    try:
        dev_login(browser, base, "root", "switchboard:admin")
        browser.get(base + "/ui/flows")
        fill(browser, {"document": FLOW.replace("INPUT", "steps.later.output")}, "#register-flow")
        browser.find_element(By.CSS_SELECTOR, "#register-flow button").click()
        wait_for(lambda: "Not registered" in text_of(browser))
        assert "later" in text_of(browser, "#errors")
        kept = browser.find_element(By.NAME, "document").get_attribute("value") or ""
        assert "steps.later.output" in kept
        fill(browser, {"document": FLOW.replace("INPUT", "input")}, "#register-flow")
        browser.find_element(By.CSS_SELECTOR, "#register-flow button").click()
        wait_for(lambda: browser.current_url == base + "/ui/flows/console-flow")
        assert "Made in the console" in text_of(browser)
    finally:
        with world.admin() as admin:
            admin.delete("/flows/console-flow")


def test_an_admin_issues_and_revokes_a_credential(deployment: Deployment, browser: Browser) -> None:
    base = deployment.url
    with deployment.gateway.client() as admin:
        card = v03_card("https://crm.example.com")
        assert admin.post("/agents", json={"card": card, "id": "crm-console"}).status_code == 201
    try:
        dev_login(browser, base, "root", "switchboard:admin")
        browser.get(base + "/ui/agents/crm-console")
        browser.find_element(By.CSS_SELECTOR, "#issue-credential button").click()
        wait_for(lambda: "Credential issued" in text_of(browser))
        secret = text_of(browser, "#secret code")
        assert len(secret) >= 32
        browser.get(base + "/ui/agents/crm-console")
        assert secret not in browser.page_source
        assert "client_secret" in text_of(browser, "#credential")
        browser.find_element(By.CSS_SELECTOR, "#revoke-credential button").click()
        wait_for(lambda: "No credential" in text_of(browser))
        with deployment.gateway.client() as admin:
            assert admin.get("/agents/crm-console/credentials").status_code == 404
    finally:
        with deployment.gateway.client() as admin:
            admin.delete("/agents/crm-console")
