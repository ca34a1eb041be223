"""`/ui/mcp`'s and `/ui/agents`' forms over real HTTP: an admin registers a
real MCP server (the gateway connects and lists its tools, as for the API)
and a real a2a-sdk agent by its card's URL, and removes them;
a bad field is said by name and nothing is stored; a non-admin, a form
without the session's CSRF token, and an unknown server are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from a2a.types import AgentSkill

from tests.support.agents import CardSource, sdk_agent_app, sdk_card
from tests.support.console import browser, dev_login
from tests.support.gateway import Gateway
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    server, _, _ = upstream_server()
    yield server
    server.stop()


def servers(gateway: Gateway) -> list[str]:
    with gateway.client() as admin:
        return [s["id"] for s in admin.get("/mcp-servers").json()["items"]]


def test_an_admin_registers_and_removes_a_server(
    deployment: Gateway, upstream: ServerThread
) -> None:
    form = {"name": "Alpha", "url": upstream.url + "/mcp", "prefix_tools": "on"}
    with browser(deployment) as ann, browser(deployment) as bob:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        bob_csrf = dev_login(bob, "bob", "crm:read")
        assert "Register an MCP server" in ann.get("/ui/mcp").text
        assert "Register an MCP server" not in bob.get("/ui/mcp").text
        # Not allowed, no token, bad fields: refused, said, nothing stored.
        assert bob.post("/ui/mcp", data={**form, "csrf": bob_csrf}).status_code == 403
        assert ann.post("/ui/mcp", data=form).status_code == 403
        bad_url = ann.post("/ui/mcp", data={**form, "url": "not a url", "csrf": csrf})
        assert bad_url.status_code == 422 and "url" in bad_url.text
        bad_id = ann.post("/ui/mcp", data={**form, "id": "Not An Id", "csrf": csrf})
        assert bad_id.status_code == 422 and "id" in bad_id.text
        header = {"header_name": "Cookie", "header_value": "x", "csrf": csrf}
        bad_header = ann.post("/ui/mcp", data={**form, **header})
        assert bad_header.status_code == 422 and "credential" in bad_header.text
        assert servers(deployment) == []

        secret = {"header_name": "X-Api-Key", "header_value": "k-123456", "csrf": csrf}
        made = ann.post("/ui/mcp", data={**form, **secret})
        assert made.status_code == 303, made.text
        assert made.headers["location"] == "/ui/mcp/alpha"
        shown = ann.get("/ui/mcp/alpha")
        assert shown.status_code == 200 and "alpha__add" in shown.text
        assert "k-123456" not in shown.text and "X-Api-Key" in shown.text
        assert servers(deployment) == ["alpha"]
        again = ann.post("/ui/mcp", data={**form, **secret})
        assert again.status_code == 409  # the API's own conflict

        assert bob.post("/ui/mcp/alpha/delete", data={"csrf": bob_csrf}).status_code == 403
        assert ann.post("/ui/mcp/alpha/delete", data={}).status_code == 403
        removed = ann.post("/ui/mcp/alpha/delete", data={"csrf": csrf})
        assert removed.status_code == 303
        assert removed.headers["location"] == "/ui/mcp?removed=alpha"
        assert "Removed alpha" in ann.get(removed.headers["location"]).text
        assert servers(deployment) == []
        assert ann.post("/ui/mcp/alpha/delete", data={"csrf": csrf}).status_code == 404


def test_an_admin_registers_and_removes_an_agent(deployment: Gateway) -> None:
    skills = [AgentSkill(id="check-stock", name="Check stock", tags=["inventory"], description="x")]
    agent = ServerThread(
        lambda url: sdk_agent_app(CardSource(sdk_card(url, skills=skills)))
    ).start()
    card_url = agent.url + "/.well-known/agent-card.json"
    try:
        with browser(deployment) as ann, browser(deployment) as bob:
            csrf = dev_login(ann, "ann", "switchboard:admin")
            bob_csrf = dev_login(bob, "bob", "crm:read")
            assert "Register an agent" in ann.get("/ui/agents").text
            assert "Register an agent" not in bob.get("/ui/agents").text
            form = {"card_url": card_url, "id": "stock"}
            assert bob.post("/ui/agents", data={**form, "csrf": bob_csrf}).status_code == 403
            assert ann.post("/ui/agents", data=form).status_code == 403
            bad = ann.post("/ui/agents", data={"card_url": "nope", "csrf": csrf})
            assert bad.status_code == 422 and "card_url" in bad.text
            none = ann.post("/ui/agents", data={"csrf": csrf})
            assert none.status_code == 422 and "card_url" in none.text
            bad_id = ann.post("/ui/agents", data={**form, "id": "Not An Id", "csrf": csrf})
            assert bad_id.status_code == 422 and "id" in bad_id.text
            assert agents(deployment) == []

            made = ann.post("/ui/agents", data={**form, "csrf": csrf})
            assert made.status_code == 303, made.text
            assert made.headers["location"] == "/ui/agents/stock"
            assert "check-stock" in ann.get("/ui/agents/stock").text
            assert agents(deployment) == ["stock"]

            assert bob.post("/ui/agents/stock/delete", data={"csrf": bob_csrf}).status_code == 403
            removed = ann.post("/ui/agents/stock/delete", data={"csrf": csrf})
            assert removed.status_code == 303
            assert "Removed stock" in ann.get(removed.headers["location"]).text
            assert agents(deployment) == []
            assert ann.post("/ui/agents/stock/delete", data={"csrf": csrf}).status_code == 404
    finally:
        agent.stop()


def agents(gateway: Gateway) -> list[str]:
    with gateway.client() as admin:
        return [a["id"] for a in admin.get("/agents").json()["items"]]
