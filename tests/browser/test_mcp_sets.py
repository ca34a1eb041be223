"""Virtual MCP servers in Chromium: an admin defines a set (a refused field
named, nothing stored), finds it listed with its address, and removes it."""

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


def test_an_admin_defines_and_removes_a_set(deployment: Deployment, browser: Browser) -> None:
    base = deployment.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser_log(browser)  # forget earlier tests' pages (the browser is shared)
    browser.get(base + "/ui/mcp-sets")
    fields = {"name": "console-set", "title": "Console set", "agents": "worker"}
    # An icon that is not https: refused by field, nothing stored.
    fill(browser, {**fields, "icon": "http://icons.example/a.png"}, "#define")
    browser.find_element(By.CSS_SELECTOR, "#define button").click()
    wait_for(lambda: "icon" in text_of(browser) and "Define or replace" not in text_of(browser))
    with deployment.gateway.client() as admin:
        assert admin.get("/mcp-sets/console-set").status_code == 404
    browser.get(base + "/ui/mcp-sets")
    fill(browser, fields, "#define")
    browser.find_element(By.CSS_SELECTOR, "#define button").click()
    wait_for(lambda: "/mcp/console-set" in text_of(browser, "#sets"))
    with deployment.gateway.client() as admin:
        assert admin.get("/mcp-sets/console-set").json()["select"]["agents"] == ["worker"]
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "#sets tbody tr")
        if "console-set" in r.text
    )
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait_for(lambda: "removed=console-set" in browser.current_url)
    assert "/mcp/console-set" not in text_of(browser, "main")
    with deployment.gateway.client() as admin:
        assert admin.get("/mcp-sets/console-set").status_code == 404
    # Nothing the CSP refused, nothing broken; the refused form's own 422 aside.
    assert [e for e in console_errors(browser) if "status of 422" not in e["message"]] == []
