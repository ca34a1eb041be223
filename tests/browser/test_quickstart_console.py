"""The quickstart without leaving the console, in Chromium, on a gateway as
`make run` starts it (no policy file): an admin registers an agent and an
MCP server, edits the policy so that the agent's calls wait for a human,
tries the agent (held: nothing sent), approves the call on the approvals
desk (then it is made, once), and tries a tool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.support.a2a_agents import worker_agent
from tests.support.browser import (
    Browser,
    browser_log,
    console_errors,
    dev_login,
    fill,
    text_of,
)
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for

HELD = "version: 1\nagents:\n  stock:\n    approval: true\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Gateway, ServerThread, Recorder, ServerThread]]:
    seen = Recorder()
    agent = worker_agent(seen, name="Stock Keeper")
    upstream, _, _ = upstream_server()
    gateway = start_gateway(tmp_path / "data", None)
    try:
        yield gateway, agent, seen, upstream
    finally:
        stop_all(gateway.server, agent, upstream)


def test_register_edit_the_policy_try_and_approve_in_the_console(
    world: tuple[Gateway, ServerThread, Recorder, ServerThread], browser: Browser
) -> None:
    gateway, agent, seen, upstream = world
    base = gateway.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser_log(browser)  # forget earlier tests' pages (the browser is shared)

    # Register the agent by its card's URL, and an MCP server.
    browser.get(base + "/ui/agents")
    card = agent.url + "/.well-known/agent-card.json"
    fill(browser, {"card_url": card, "id": "stock"}, "#register")
    browser.find_element(By.CSS_SELECTOR, "#register button").click()
    wait_for(lambda: browser.current_url == base + "/ui/agents/stock")
    browser.get(base + "/ui/mcp")
    fill(browser, {"name": "Calc", "id": "calc", "url": upstream.url + "/mcp"}, "#register")
    browser.find_element(By.CSS_SELECTOR, "#register button").click()
    wait_for(lambda: browser.current_url == base + "/ui/mcp/calc")

    # The policy: calls to the agent wait for a human. Checked, then saved.
    browser.get(base + "/ui/policy")
    fill(browser, {"document": HELD}, "#edit")
    browser.find_element(By.ID, "check").click()
    assert "+    approval: true" in wait_for(lambda: text_of(browser, "#diff"))
    browser.find_element(By.ID, "save").click()
    wait_for(lambda: "is in force" in text_of(browser, "#saved"))

    # Try the agent: held, nothing sent.
    browser.get(base + "/ui/try?agent=stock")
    fill(browser, {"message": "count the shed"}, "#ask-agent")
    browser.find_element(By.CSS_SELECTOR, "#ask-agent button").click()
    held = wait_for(lambda: text_of(browser, "#held"))
    assert "nothing was called yet" in held
    assert seen.calls() == []

    # Approve it on the desk: the call is made, once.
    browser.find_element(By.CSS_SELECTOR, "#held a").click()
    wait_for(lambda: "/ui/approvals/" in browser.current_url)
    assert "count the shed" in text_of(browser)
    fill(browser, {"reason": "quickstart"}, "#decide")
    browser.find_element(By.ID, "approve").click()
    wait_for(lambda: "approved" in text_of(browser, "#approval-state"))
    wait_for(lambda: len(seen.calls()) == 1)

    # Try a tool of the server registered above.
    browser.get(base + "/ui/try?tool=calc__add")
    fill(browser, {"arguments": '{"a": 2, "b": 3}'}, "#call-tool")
    browser.find_element(By.CSS_SELECTOR, "#call-tool button").click()
    assert '"result": 5' in wait_for(lambda: text_of(browser, "#answer"))
    assert console_errors(browser) == []
    assert len(seen.calls()) == 1
