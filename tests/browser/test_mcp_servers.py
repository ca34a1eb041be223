"""The MCP servers page: a tool changed under the gateway is quarantined,
shown with what changed, re-approved in the console and callable again; a
tool whose description hides characters is shown with them made visible."""

from __future__ import annotations

from mcp import MCPError
from selenium.webdriver.common.by import By

from tests.support.browser import Browser, dev_login, text_of
from tests.support.console_world import SERVER, World
from tests.support.waiting import wait_for

CHANGED = "Add two integers, then add one more for luck."


def test_reapprove_a_quarantined_tool_and_see_it_callable(world: World, browser: Browser) -> None:
    assert "tools__add" in world.tools("dana")
    world.change_tool(CHANGED)  # the rug pull: the server changes the tool under the gateway
    base = world.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(base + "/ui/mcp")
    browser.find_element(By.LINK_TEXT, "Toolbox").click()
    wait_for(lambda: browser.current_url == f"{base}/ui/mcp/{SERVER}")
    browser.find_element(By.CSS_SELECTOR, "#refresh button").click()
    wait_for(lambda: "quarantined" in text_of(browser, "#tool-add h3"))
    shown = text_of(browser, "#tool-add .diff")
    assert '-  "description": "Add two integers.",' in shown  # what was approved
    assert f'+  "description": "{CHANGED}",' in shown  # what it is now
    # Quarantined: no user is offered it, and a call is refused.
    assert "tools__add" not in world.tools("dana")
    assert isinstance(world.call("dana", "tools__add", {"a": 2, "b": 3}), MCPError)
    browser.find_element(By.ID, "approve-add").click()
    wait_for(lambda: "approved" in text_of(browser, "#tool-add h3"))
    assert not browser.find_elements(By.ID, "approve-add")
    assert "by root" in text_of(browser, "#tool-add")
    assert "tools__add" in world.tools("dana")
    result = world.call("dana", "tools__add", {"a": 2, "b": 3})
    assert not isinstance(result, MCPError) and not result.is_error, result
    assert "5" in str(result.content)


def test_hidden_characters_are_shown_plainly_and_only_to_admins(
    world: World, browser: Browser
) -> None:
    base = world.url
    dev_login(browser, base, "root", "switchboard:admin")
    browser.get(f"{base}/ui/mcp/{SERVER}")
    tool = text_of(browser, "#tool-hidden_add")
    assert "pending" in tool
    assert "hidden-unicode in description" in tool
    marks = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#tool-hidden_add mark")]
    assert marks[0] == "U+200B"
    assert "".join(m.split()[-1] for m in marks[1:]) == "Ignore"  # tag characters spell it
    assert browser.find_element(By.ID, "approve-hidden_add").text.startswith("Approve")
    assert "tools__greet" in text_of(browser, "#prompts")
    assert "note://welcome" in text_of(browser, "#resources")
    # A user sees the tools they may call, the prompts and resources: nothing pending.
    dev_login(browser, base, "dana", "crm:read")
    browser.get(f"{base}/ui/mcp/{SERVER}")
    assert "tools__slow" in text_of(browser)
    assert not browser.find_elements(By.ID, "tool-hidden_add")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.approve, #refresh")
    assert "tools__greet" in text_of(browser, "#prompts")
