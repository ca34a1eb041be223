"""`/ui/mcp-sets` over real HTTP: everyone sees the sets and their addresses;
an admin defines, replaces and removes them with the API's own checks (a bad
field said by name, nothing stored), each form behind the session's CSRF token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.console import browser, dev_login
from tests.support.gateway import Gateway
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    server, _, _ = upstream_server()
    yield server
    server.stop()


def stored(gateway: Gateway) -> list[dict[str, object]]:
    with gateway.client() as admin:
        items: list[dict[str, object]] = admin.get("/mcp-sets").json()["items"]
    return items


FORM = {
    "name": "ops",
    "title": "Ops tools",
    "description": "For the ops team",
    "instructions": "Ask first.",
    "servers": "alpha",
    "tools": "beta__*, alpha__add\n",
    "tool_search": "on",
}


def test_an_admin_defines_and_removes_a_set(deployment: Gateway, upstream: ServerThread) -> None:
    with deployment.client() as admin:
        added = admin.post("/mcp-servers", json={"name": "alpha", "url": upstream.url + "/mcp"})
        assert added.status_code == 201, added.text
    with browser(deployment) as ann, browser(deployment) as bob:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        bob_csrf = dev_login(bob, "bob", "crm:read")
        # Not an admin; no CSRF token: refused, nothing stored.
        assert bob.post("/ui/mcp-sets", data={**FORM, "csrf": bob_csrf}).status_code == 403
        assert ann.post("/ui/mcp-sets", data=FORM).status_code == 403
        # A bad field: said by its name, nothing stored.
        bad = ann.post("/ui/mcp-sets", data={**FORM, "title": "", "csrf": csrf})
        assert bad.status_code == 422 and "title" in bad.text
        odd = ann.post("/ui/mcp-sets", data={**FORM, "tool_search": "maybe", "csrf": csrf})
        assert odd.status_code == 422 and "tool_search" in odd.text
        unknown = ann.post("/ui/mcp-sets", data={**FORM, "servers": "nope", "csrf": csrf})
        assert unknown.status_code == 422 and "nope" in unknown.text
        typo = ann.post("/ui/mcp-sets", data={**FORM, "tools": "alpha__ad", "csrf": csrf})
        assert typo.status_code == 422 and "alpha__ad" in typo.text
        badname = ann.post("/ui/mcp-sets", data={**FORM, "name": "Not A Name", "csrf": csrf})
        assert badname.status_code == 422
        assert stored(deployment) == []

        saved = ann.post("/ui/mcp-sets", data={**FORM, "csrf": csrf})
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == "/ui/mcp-sets?saved=ops"
        [kept] = stored(deployment)
        assert kept["select"] == {
            "servers": ["alpha"],
            "agents": [],
            "tags": [],
            "tools": ["beta__*", "alpha__add"],
        }
        assert kept["tool_search"] == "on"
        listed = bob.get("/ui/mcp-sets")
        assert listed.status_code == 200
        assert f"{deployment.url}/mcp/ops" in listed.text and "Remove" not in listed.text
        assert "Remove" in ann.get("/ui/mcp-sets").text
        assert bob.post("/ui/mcp-sets/ops/delete", data={"csrf": bob_csrf}).status_code == 403
        removed = ann.post("/ui/mcp-sets/ops/delete", data={"csrf": csrf})
        assert removed.status_code == 303
        assert stored(deployment) == []
        assert ann.post("/ui/mcp-sets/ops/delete", data={"csrf": csrf}).status_code == 404
