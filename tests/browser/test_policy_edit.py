"""Editing the policy in Chromium, on a quickstart gateway (no policy file):
Check shows the diff against the built-in default and saves nothing, Save
puts the text in force and the page shows it; a save over a policy changed
meanwhile is refused with the text kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import (
    Browser,
    browser_log,
    console_errors,
    dev_login,
    fill,
    text_of,
)
from tests.support.gateway import Gateway, start_gateway
from tests.support.waiting import wait_for

CLOSED = "# closed while the contract is renewed\nagents:\n  sales:\n    allow: false\n"


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(Path(tmp_path_factory.mktemp("quickstart") / "data"), None)
    try:
        yield gateway
    finally:
        gateway.stop()


def stored(gateway: Gateway) -> list[object]:
    with gateway.client() as admin:
        items: list[object] = admin.get("/policies/versions").json()["items"]
    return items


def test_check_shows_the_diff_and_save_puts_the_policy_in_force(
    quickstart: Gateway, browser: Browser
) -> None:
    base = quickstart.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser_log(browser)  # forget earlier pages' messages
    browser.get(base + "/ui/policy")
    assert "built-in default" in text_of(browser, "#source")
    editor = browser.find_element(By.CSS_SELECTOR, "#edit textarea[name=document]")
    assert "version: 1" in (editor.get_attribute("value") or "")

    fill(browser, {"document": CLOSED}, "#edit")
    browser.find_element(By.ID, "check").click()
    diff = wait_for(lambda: text_of(browser, "#diff"))
    assert "+    allow: false" in diff and "-version: 1" in diff
    assert stored(quickstart) == []

    browser.find_element(By.ID, "save").click()
    wait_for(lambda: "version 1 is in force" in text_of(browser, "#saved"))
    assert "version 1, saved here" in text_of(browser, "#source")
    assert "allow: false" in text_of(browser, "#policy")
    editor = browser.find_element(By.CSS_SELECTOR, "#edit textarea[name=document]")
    assert editor.get_attribute("value") == CLOSED
    assert len(stored(quickstart)) == 1
    assert not console_errors(browser)  # nothing the CSP refused


def test_a_save_over_a_policy_changed_meanwhile_is_refused(
    quickstart: Gateway, browser: Browser
) -> None:
    base = quickstart.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(base + "/ui/policy")
    with quickstart.client() as admin:
        current = admin.get("/policies").json()
        body = {"document": "agents: {}\n", "base_digest": current["digest"]}
        assert admin.put("/policies", json=body).status_code == 200
    mine = "agents:\n  billing:\n    approval: true\n"
    fill(browser, {"document": mine}, "#edit")
    browser.find_element(By.ID, "save").click()
    wait_for(lambda: "changed meanwhile" in text_of(browser, "#stale"))
    editor = browser.find_element(By.CSS_SELECTOR, "#edit textarea[name=document]")
    assert editor.get_attribute("value") == mine
    assert "+    approval: true" in text_of(browser, "#diff")
    count = len(stored(quickstart))
    browser.find_element(By.ID, "save").click()  # having seen the diff
    wait_for(lambda: "is in force" in text_of(browser, "#saved"))
    assert len(stored(quickstart)) == count + 1
