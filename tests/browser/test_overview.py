"""The overview's traffic charts in Chromium: calls made through the gateway
(one held for approval, one refused) drawn as inline SVG the page's CSP
lets through, with the figures as text, inside a phone's width."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from gateway.delegation.audit_traffic import is_call
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.browser.conftest import Deployment
from tests.support.browser import Browser, browser_log, console_errors, dev_login
from tests.support.console import held_call, user_token
from tests.support.inspecting import send_message_body
from tests.support.waiting import wait_for


def audited(deployment: Deployment) -> tuple[int, int]:
    """The calls and refusals the audit log holds (all of them within the hour)."""
    gateway = deployment.gateway
    with gateway.client(gateway.token("root", ADMIN_SCOPE)) as admin:
        items: list[dict[str, Any]] = admin.get("/audit", params={"limit": 1000}).json()["items"]
    calls = [r for r in items if is_call(r["event"])]
    return len(calls), sum(r["decision"] == "deny" for r in calls)


def shown(browser: Browser, chart: str) -> dict[str, str]:
    figure = browser.find_element(By.ID, f"chart-{chart}")
    return {
        item.find_element(By.TAG_NAME, "dt").text: item.find_element(By.TAG_NAME, "dd").text
        for item in figure.find_elements(By.CSS_SELECTOR, ".chart-figures div")
    }


def test_the_charts_render_with_their_figures(deployment: Deployment, browser: Browser) -> None:
    gateway = deployment.gateway
    asyncio.run(held_call(gateway, user_token(gateway, "tess"), "task of tess"))
    refused = httpx.post(
        f"{gateway.url}/a2a/nobody",
        json=send_message_body("anyone there?"),
        headers={"Authorization": f"Bearer {user_token(gateway, 'tess')}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    )
    assert refused.status_code >= 400, refused.text
    dev_login(browser, deployment.url, "root", ADMIN_SCOPE)
    browser_log(browser)  # forget what came before

    def agrees() -> tuple[int, int] | None:
        browser.get(deployment.url + "/ui")
        figures = (
            int(shown(browser, "calls")["in the hour"]),
            int(shown(browser, "refusals")["in the hour"]),
        )
        return figures if figures == audited(deployment) else None

    calls, refusals = wait_for(agrees)
    assert calls >= 1 and refusals >= 1

    svg = browser.find_element(By.CSS_SELECTOR, "#chart-calls svg")
    label = svg.get_attribute("aria-label") or ""
    assert label.startswith(f"Calls per minute, the last 60 minutes: {calls} in all")
    assert svg.get_attribute("role") == "img"
    refusal_label = browser.find_element(By.CSS_SELECTOR, "#chart-refusals svg").get_attribute(
        "aria-label"
    )
    assert f"{refusals} in all" in (refusal_label or "")
    bars = svg.find_elements(By.CSS_SELECTOR, "rect.chart-bar")
    assert bars and all(b.rect["height"] > 0 and b.rect["width"] > 0 for b in bars)
    # The bars' colour is console.css's accent (SVG's default is black).
    assert bars[0].value_of_css_property("fill") == "rgb(35, 80, 200)"
    assert shown(browser, "latency")["latest"].endswith(" ms")
    # No CSP violation, nothing failed to load (the favicon included).
    assert console_errors(browser) == []

    browser.set_window_size(390, 844)  # a phone
    try:
        browser.get(deployment.url + "/ui")
        inner = browser.execute_script("return window.innerWidth")
        for chart in ("calls", "refusals", "latency"):
            box = browser.find_element(By.CSS_SELECTOR, f"#chart-{chart} svg").rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= inner and box["width"] > 200
    finally:
        browser.set_window_size(1280, 900)
