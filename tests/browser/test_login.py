"""Logging in and out in Chromium; a forged form refused; a non-admin kept
out of the admin pages."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser.conftest import Deployment
from tests.support.browser import Browser, console_errors, dev_login, text_of
from tests.support.waiting import wait_for


def test_log_in_and_out(deployment: Deployment, browser: Browser) -> None:
    base = deployment.url
    dev_login(browser, base, "root", "switchboard:admin")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert "root" in text_of(browser, "header")
    assert "Worker" in text_of(browser)  # the registered agent, with its health
    cookie = browser.get_cookie("switchboard-session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    browser.find_element(By.CSS_SELECTOR, "form.who button").click()
    wait_for(lambda: browser.current_url == base + "/ui/login")
    assert browser.get_cookie("switchboard-session") is None
    browser.get(base + "/ui/agents")
    assert browser.current_url.startswith(base + "/ui/login?next=/ui/agents")
    # No page broke its own Content-Security-Policy (no inline script or style).
    assert not [e for e in console_errors(browser) if "Content Security Policy" in e["message"]]


def test_a_form_with_a_forged_csrf_token_is_refused(
    deployment: Deployment, browser: Browser
) -> None:
    base = deployment.url
    dev_login(browser, base, "root", "switchboard:admin")
    # What a forged cross-site form would send: the right fields, a wrong token.
    browser.execute_script("document.querySelector('form.who input[name=csrf]').value = 'forged'")
    browser.find_element(By.CSS_SELECTOR, "form.who button").click()
    wait_for(lambda: "CSRF" in text_of(browser))
    assert "Refused" in browser.find_element(By.TAG_NAME, "h1").text
    browser.get(base + "/ui")
    assert browser.current_url == base + "/ui"  # still logged in: nothing happened


def test_a_non_admin_does_not_see_admin_pages(deployment: Deployment, browser: Browser) -> None:
    base = deployment.url
    dev_login(browser, base, "bob", "crm:read")
    menu = text_of(browser, "header nav")
    assert "Approvals" in menu and "Audit" not in menu and "Policy" not in menu
    for path in ("/ui/audit", "/ui/policy"):
        browser.get(base + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Admins only"
        assert "403" in text_of(browser)
