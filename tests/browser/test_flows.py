"""The flows pages: a run waiting at its checkpoint, cancelled and resumed
from the console by the user who started it, then finished."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.support.browser import Browser, dev_login, text_of
from tests.support.console_world import FLOW, World
from tests.support.waiting import wait_for


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
    wait_for(lambda: "input_required" in text_of(browser, "#run-state"))
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


def test_the_run_page_follows_the_run_live_and_draws_its_graph(
    world: World, browser: Browser
) -> None:
    """Nobody reloads: the approval decided elsewhere shows on the open page
    (server-sent events, static/live.js), and the graph's step turns done."""
    run = world.start_run("hana", "O-88")
    approval = run["steps"][0]["approval_id"]
    base = world.url
    dev_login(browser, base, "hana", "crm:read")
    browser.get(f"{base}/ui/flows/{FLOW}/runs/{run['id']}")
    assert "input_required" in text_of(browser, "#run-state")
    assert browser.find_elements(By.CSS_SELECTOR, "#graph #node-manager.node-waiting")
    with world.admin() as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
    wait_for(lambda: "completed" in text_of(browser, "#run-state"))
    wait_for(lambda: bool(browser.find_elements(By.CSS_SELECTOR, "#node-manager.node-completed")))
    assert '"order": "O-88"' in text_of(browser, "#output")


def test_fork_an_ended_run_and_replay_it(world: World, browser: Browser) -> None:
    run = world.start_run("ivan", "O-99")
    with world.admin() as admin:
        approval = run["steps"][0]["approval_id"]
        assert admin.post(f"/approvals/{approval}", json={"decision": "approve"}).status_code == 200
    with world.user("ivan") as ivan:
        world.run_in(ivan, run["id"], "completed")
    base = world.url
    dev_login(browser, base, "ivan", "crm:read")
    browser.get(f"{base}/ui/flows/{FLOW}/runs/{run['id']}")
    browser.find_element(By.ID, "replay-link").click()
    wait_for(lambda: "/replay" in browser.current_url)
    assert "step 1 of 1" in text_of(browser, "h1")
    assert "manager" in text_of(browser, "#replay-step")
    browser.back()
    wait_for(lambda: bool(browser.find_elements(By.ID, "fork-form")))
    field = browser.find_element(By.ID, "fork-input")
    field.clear()
    field.send_keys('{"order": "O-100"}')
    browser.find_element(By.CSS_SELECTOR, "#fork-form button").click()
    # The fork's page reloads itself when the new run's state moves on
    # (static/live.js), so its text is read until it holds, not once.
    wait_for(lambda: run["id"] in text_of(browser, "#forked-from"))
    # The checkpoint is the fork's first step: asked again, for the new order.
    wait_for(lambda: "input_required" in text_of(browser, "#run-state"))
