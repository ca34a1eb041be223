"""A call held for approval, approved in the console: the held call goes on
and its task completes; a non-admin sees only their own approvals."""

from __future__ import annotations

import asyncio

from a2a.types import TaskState
from selenium.webdriver.common.by import By

from tests.browser.conftest import Deployment
from tests.support.browser import Browser, dev_login, fill, text_of
from tests.support.console import held_call, task_state, user_token
from tests.support.waiting import wait_for


def test_approve_a_held_call_and_see_its_task_complete(
    deployment: Deployment, browser: Browser
) -> None:
    alice = user_token(deployment.gateway, "alice")
    task, approval = asyncio.run(held_call(deployment.gateway, alice, "task from the console"))
    assert not deployment.seen.calls(), "the agent was called before the approval"
    base = deployment.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(base + "/ui/approvals?state=pending")
    browser.find_element(By.LINK_TEXT, approval).click()
    wait_for(lambda: browser.current_url == f"{base}/ui/approvals/{approval}")
    shown = text_of(browser)
    assert "task from the console" in shown  # what is asked
    assert "alice" in shown  # by whom
    fill(browser, {"reason": "ticket OPS-12"}, "#decide")
    browser.find_element(By.ID, "approve").click()
    wait_for(lambda: "approved" in text_of(browser, "#approval-state"))
    assert "ticket OPS-12" in text_of(browser)
    # The held call went on, for alice, and her task completed.
    wait_for(
        lambda: (
            asyncio.run(task_state(deployment.gateway, alice, task.id))
            == TaskState.TASK_STATE_COMPLETED
        ),
        seconds=20,
        every=0.2,
        what="the approved task did not complete",
    )
    assert len(deployment.seen.calls()) == 1

    def outcome() -> bool:
        browser.refresh()
        return "TASK_STATE_COMPLETED" in text_of(browser, "#approval-state")

    wait_for(outcome, every=0.3)


def test_a_non_admin_sees_only_their_own_approvals(
    deployment: Deployment, browser: Browser
) -> None:
    _, mine = asyncio.run(
        held_call(deployment.gateway, user_token(deployment.gateway, "bob"), "task of bob")
    )
    _, theirs = asyncio.run(
        held_call(deployment.gateway, user_token(deployment.gateway, "carol"), "task of carol")
    )
    base = deployment.url
    dev_login(browser, base, "bob", "crm:read")
    browser.get(base + "/ui/approvals")
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#approvals tbody a")]
    assert listed == [mine]
    browser.get(f"{base}/ui/approvals/{mine}")
    assert "pending" in text_of(browser, "#approval-state")
    assert not browser.find_elements(By.ID, "decide")  # no approve/reject for a non-admin
    browser.get(f"{base}/ui/approvals/{theirs}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
