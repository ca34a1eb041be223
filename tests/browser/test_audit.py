"""The audit page's filters and a request's delegation tree, in Chromium."""

from __future__ import annotations

import asyncio

from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from tests.browser.conftest import Deployment
from tests.support.browser import Browser, dev_login, fill, text_of
from tests.support.console import held_call, user_token
from tests.support.waiting import wait_for


def test_filter_the_log_and_open_a_trace(deployment: Deployment, browser: Browser) -> None:
    asyncio.run(
        held_call(deployment.gateway, user_token(deployment.gateway, "dave"), "task of dave")
    )
    base = deployment.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(base + "/ui/audit")
    fill(browser, {"user": "dave", "agent": "worker"}, "form.filters")
    Select(browser.find_element(By.NAME, "decision")).select_by_visible_text("allow")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait_for(lambda: "user=dave" in browser.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    assert rows and all("dave" in r.text for r in rows)
    assert any("approval_required" in r.text for r in rows)
    rows[0].find_element(By.TAG_NAME, "a").click()
    wait_for(lambda: "/ui/audit/trace/" in browser.current_url)
    tree = text_of(browser, "#tree")
    assert "worker" in tree and "approval_required" in tree and "dave" in tree
