"""The holds page: a hold a tool call opened, keeping another call back,
released by an admin in the console; the held-back call then goes through."""

from __future__ import annotations

from mcp import MCPError
from selenium.webdriver.common.by import By

from tests.support.browser import Browser, dev_login, text_of
from tests.support.console_world import RULE, World
from tests.support.waiting import wait_for


def test_release_a_hold_and_the_call_it_kept_back_goes_through(
    world: World, browser: Browser
) -> None:
    opened = world.call("hank", "tools__slow", {"steps": 7})  # opens the hold on customer 7
    assert not isinstance(opened, MCPError) and not opened.is_error, opened
    refused = world.call("hank", "tools__add", {"a": 7, "b": 1})
    assert isinstance(refused, MCPError), refused
    assert isinstance(refused.error.data, dict) and refused.error.data["rule"] == RULE
    base = world.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(base + "/ui/holds?entity=customer:7")
    rows = browser.find_elements(By.CSS_SELECTOR, "#holds tbody tr")
    assert len(rows) == 1
    assert RULE in rows[0].text and "hank via tools / slow" in rows[0].text
    rows[0].find_element(By.CSS_SELECTOR, "form.release button").click()
    wait_for(lambda: browser.find_elements(By.ID, "released"))
    browser.get(base + "/ui/holds?entity=customer:7")
    assert "Nothing in force" in text_of(browser)
    done = world.call("hank", "tools__add", {"a": 7, "b": 1})
    assert not isinstance(done, MCPError) and not done.is_error, done
    assert "8" in str(done.content)


def test_a_non_admin_has_no_holds_page(world: World, browser: Browser) -> None:
    base = world.url
    dev_login(browser, base, "hank", "crm:read")
    assert not browser.find_elements(By.LINK_TEXT, "Holds")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")][:4] == [
        "Overview",
        "Agents",
        "MCP servers",
        "Flows",
    ]
    browser.get(base + "/ui/holds")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Admins only"
