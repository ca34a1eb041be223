"""The MCP servers, flows and holds pages over real HTTP: every POST needs the
session's CSRF token; approving a tool and releasing a hold are for admins
(403 for anyone else, before anything changes); a user cancels only their
own runs; a stale review (the tool changed again) is refused, not approved."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.console_world import FLOW, SERVER, World, start_world
from tests.support.servers import stop_all

DIGEST = re.compile(
    r'name="tool" value="tools__hidden_add">\s*<input type="hidden" name="digest" value="([^"]+)"'
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = start_world(tmp_path_factory.mktemp("console-world"))
    yield made
    stop_all(made.gateway.server, made.upstream)


def browser(world: World) -> httpx.Client:
    return httpx.Client(base_url=world.url, timeout=30, follow_redirects=False, verify=client_tls())


def test_every_post_needs_the_csrf_token(world: World) -> None:
    run = world.start_run("ivy", "O-9")
    posts = [
        (f"/ui/mcp/{SERVER}/approve", {"tool": "tools__hidden_add"}),
        (f"/ui/mcp/{SERVER}/refresh", {}),
        ("/ui/holds/release", {"rule": "sums-wait", "key": "1"}),
        (f"/ui/flows/{FLOW}/runs/{run['id']}/cancel", {}),
        (f"/ui/flows/{FLOW}/runs/{run['id']}/resume", {}),
    ]
    with browser(world) as client:
        dev_login(client, "root", "switchboard:admin")
        for path, form in posts:
            answer = client.post(path, data={**form, "csrf": "forged"})
            assert answer.status_code == 403, path
            assert "CSRF" in answer.text
    with world.user("ivy") as ivy:
        assert ivy.get(f"/flows/{FLOW}/runs/{run['id']}").json()["state"] == "input_required"


def test_admin_actions_are_refused_to_others(world: World) -> None:
    with browser(world) as client:
        csrf = dev_login(client, "judy", "crm:read")
        page = client.get(f"/ui/mcp/{SERVER}").text
        assert "hidden_add" not in page and "/approve" not in page
        for path, form in (
            (f"/ui/mcp/{SERVER}/approve", {"tool": "tools__hidden_add"}),
            (f"/ui/mcp/{SERVER}/refresh", {}),
            ("/ui/holds/release", {"rule": "sums-wait", "key": "1"}),
        ):
            answer = client.post(path, data={**form, "csrf": csrf})
            assert answer.status_code == 403, path
            assert "Admins only" in answer.text
    with world.admin() as admin:
        tools = {t["name"]: t for t in admin.get(f"/mcp-servers/{SERVER}").json()["tools"]}
    assert tools["hidden_add"]["state"] == "pending"


def test_a_user_cancels_only_their_own_runs(world: World) -> None:
    theirs = world.start_run("kim", "O-10")
    with browser(world) as client:
        csrf = dev_login(client, "leo", "crm:read")
        answer = client.post(f"/ui/flows/{FLOW}/runs/{theirs['id']}/cancel", data={"csrf": csrf})
        assert answer.status_code == 404
    with world.user("kim") as kim:
        assert kim.get(f"/flows/{FLOW}/runs/{theirs['id']}").json()["state"] == "input_required"


def test_a_review_of_a_definition_that_changed_since_is_refused(world: World) -> None:
    with browser(world) as client:
        csrf = dev_login(client, "root", "switchboard:admin")
        found = DIGEST.search(client.get(f"/ui/mcp/{SERVER}").text)
        assert found is not None
        form = {"csrf": csrf, "tool": "tools__hidden_add", "digest": "sha256:" + "0" * 64}
        stale = client.post(f"/ui/mcp/{SERVER}/approve", data=form)
        assert stale.status_code == 409
        assert "changed" in stale.text
        form["digest"] = found.group(1)
        assert client.post(f"/ui/mcp/{SERVER}/approve", data=form).status_code == 303
        assert "Approve this definition" not in client.get(f"/ui/mcp/{SERVER}").text
