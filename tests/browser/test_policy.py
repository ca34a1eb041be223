"""The policy page's explain form, and the offline /docs, in Chromium."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser.conftest import Deployment
from tests.support.browser import (
    Browser,
    browser_log,
    console_errors,
    dev_login,
    fill,
    text_of,
)
from tests.support.waiting import wait_for


def test_explain_whether_a_user_may_call_a_skill(deployment: Deployment, browser: Browser) -> None:
    base = deployment.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(base + "/ui/policy")
    assert "approval: true" in text_of(browser, "#policy")
    fill(
        browser,
        {"subject": "alice", "scopes": "crm:read", "target": "worker", "action": "work"},
        "#explain",
    )
    browser.find_element(By.CSS_SELECTOR, "#explain button").click()
    answer = wait_for(lambda: browser.find_elements(By.ID, "answer"))[0].text
    assert "allow" in answer and "needs approval" in answer
    fill(browser, {"target": "nobody"}, "#explain")
    browser.find_element(By.CSS_SELECTOR, "#explain button").click()
    wait_for(lambda: "404" in text_of(browser))


def test_docs_render_offline_with_authorize(deployment: Deployment, browser: Browser) -> None:
    browser_log(browser)  # forget earlier pages' messages
    browser.get(deployment.url + "/docs")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert browser.find_elements(By.CSS_SELECTOR, "button.authorize")
    assert "/a2a/{agent_id}" in text_of(browser, ".swagger-ui .info")
    # Every resource the page loaded came from the gateway itself.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(url.startswith(deployment.url) for url in loaded), loaded
    assert not console_errors(browser)
