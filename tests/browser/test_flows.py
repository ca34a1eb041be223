"""The flows pages: a run waiting at its checkpoint, cancelled and resumed
from the console by the user who started it, then finished."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.support.browser import Browser, dev_login, text_of, wait_for
from tests.support.console_world import FLOW, World


def test_cancel_a_run_and_resume_it_from_the_console(world: World, browser: Browser) -> None:
    run = world.start_run("erin", "O-77")
    approval = run["steps"][0]["approval_id"]
    base = world.url
    dev_login(browser, base, "erin", "crm:read")
    browser.get(base + "/ui/flows")
    browser.find_element(By.LINK_TEXT, "Refund with a manager").click()
    wait_for(lambda: browser.current_url == f"{base}/ui/flows/{FLOW}")
    browser.find_element(By.LINK_TEXT, run["id"]).click()
    wait_for(lambda: run["id"] in browser.current_url)
    assert "input_required" in text_of(browser, "#run-state")
    assert "waiting" in text_of(browser, "#step-manager")
    browser.find_element(By.CSS_SELECTOR, "#cancel button").click()
    wait_for(lambda: "canceled" in text_of(browser, "#run-state"))
    with world.admin() as admin:
        assert admin.get(f"/approvals/{approval}").json()["state"] == "withdrawn"
    assert not browser.find_elements(By.ID, "cancel")
    browser.find_element(By.CSS_SELECTOR, "#resume button").click()
    wait_for(lambda: "input_required" in text_of(browser, "#run-state"))
    with world.admin() as admin:
        assert admin.get(f"/approvals/{approval}").json()["state"] == "pending"
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text

    def completed() -> bool:
        browser.refresh()
        return "completed" in text_of(browser, "#run-state")

    wait_for(completed, every=0.3)
    assert '"order": "O-77"' in text_of(browser, "#output")
    assert "completed" in text_of(browser, "#step-manager")
    assert browser.find_elements(By.CSS_SELECTOR, "#step-manager svg.bar rect.span")


def test_a_user_sees_only_their_own_runs(world: World, browser: Browser) -> None:
    mine = world.start_run("frank", "O-1")
    theirs = world.start_run("gina", "O-2")
    base = world.url
    dev_login(browser, base, "frank", "crm:read")
    browser.get(f"{base}/ui/flows/{FLOW}")
    listed = [
        a.text for a in browser.find_elements(By.CSS_SELECTOR, "#runs tbody td:first-child a")
    ]
    assert listed == [mine["id"]]
    assert not browser.find_elements(By.ID, "versions")  # versions are for admins
    browser.get(f"{base}/ui/flows/{FLOW}/runs/{theirs['id']}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "No such run"
