"""`DELETE /flows/{id}` (SQLite and PostgreSQL): refused while a run is still
going unless asked to cancel it, and while another flow calls the flow; then
the flow, its versions and its agent are gone (its runs' records stay, and the
removal is audited), and only an admin may do it."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import main
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.e2e.test_flow_waits import _start, _until_waiting, waiting_flow
from tests.support.console import dev_login
from tests.support.flows import POLICY, FlowSetup, flow_setup

FLOW = "pay-then-reply"


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY + f"  {FLOW}:\n    grant: [sales:quote]\n  outer:\n    grant: [sales:quote]\n"
    with flow_setup(tmp_path, database_url, policy) as made:
        yield made


def test_a_flow_with_a_run_going_is_removed_only_with_cancel(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow()).status_code == 201
    with setup.user() as dana:
        run = _until_waiting(dana, _start(setup, dana))
        # Not an admin: refused, whatever the query.
        assert dana.delete(f"/flows/{FLOW}?cancel=true").status_code == 403
    with setup.admin() as admin:
        busy = admin.delete(f"/flows/{FLOW}")
        assert busy.status_code == 409, busy.text
        assert busy.json()["type"].endswith("flow-busy")
        assert run["id"] in busy.json()["detail"]
        assert admin.get(f"/flows/{FLOW}").status_code == 200  # nothing removed
        removed = admin.delete(f"/flows/{FLOW}", params={"cancel": "true"})
        assert removed.status_code == 204, removed.text
        assert admin.get(f"/flows/{FLOW}").status_code == 404
        assert admin.get(f"/flows/{FLOW}/versions").status_code == 404
        assert admin.get(f"/agents/{FLOW}").status_code == 404  # its /a2a/{id} agent too
        assert admin.delete(f"/flows/{FLOW}").status_code == 404
        audit = admin.get("/audit", params={"kind": "all", "agent": FLOW, "limit": 50}).json()[
            "items"
        ]
    [deleted] = [e for e in audit if e["event"] == "flow.deleted"]
    assert run["id"] in deleted["detail"]
    # The run was cancelled, and its record stays; it cannot be resumed.
    with setup.user() as dana:
        assert dana.post(f"/flows/{FLOW}/runs", json={"input": {}}).status_code == 404
        resumed = dana.post(f"/flows/{FLOW}/runs/{run['id']}/resume")
        assert resumed.status_code == 404, resumed.text

    async def state() -> Any:
        return (await setup.gateway.server.app.state.switchboard.flows.view(run["id"])).state

    assert setup.gateway.server.run(state()) == "canceled"


def test_a_flow_another_flow_calls_is_not_removed(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow()).status_code == 201
    outer = {
        "format": "switchboard.flow/v1",
        "id": "outer",
        "name": "Calls the other flow",
        "input": {"type": "object"},
        "steps": [{"id": "inner", "call": {"agent": FLOW}, "input": "input"}],
    }
    assert setup.register(outer).status_code == 201
    with setup.admin() as admin:
        called = admin.delete(f"/flows/{FLOW}", params={"cancel": "true"})
        assert called.status_code == 409, called.text
        assert "outer" in called.json()["detail"]
        assert admin.delete("/flows/outer").status_code == 204
        assert admin.delete(f"/flows/{FLOW}").status_code == 204


def test_the_cli_removes_a_flow(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow()).status_code == 201
    out = io.StringIO()
    token = setup.gateway.token("admin", "switchboard:admin")
    with contextlib.redirect_stdout(out):
        code = main(["flows", "delete", FLOW, "--gateway", setup.gateway.url, "--token", token])
    assert code == 0, out.getvalue()
    assert f"removed {FLOW}" in out.getvalue()
    with setup.admin() as admin:
        assert admin.get(f"/flows/{FLOW}").status_code == 404


def test_an_admin_removes_a_flow_from_the_console(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow()).status_code == 201
    with setup.user() as dana:
        run = _until_waiting(dana, _start(setup, dana))
    gateway = setup.gateway
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as browser:
        csrf = dev_login(browser, "dana", "")
        page = browser.get(f"/ui/flows/{FLOW}")
        assert 'id="delete"' not in page.text  # not an admin: no button
        refused = browser.post(f"/ui/flows/{FLOW}/delete", data={"csrf": csrf, "cancel": "true"})
        assert refused.status_code == 403
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as browser:
        csrf = dev_login(browser, "admin", ADMIN_SCOPE)
        assert 'id="delete"' in browser.get(f"/ui/flows/{FLOW}").text
        busy = browser.post(f"/ui/flows/{FLOW}/delete", data={"csrf": csrf})
        assert busy.status_code == 409
        assert run["id"] in busy.text
        done = browser.post(f"/ui/flows/{FLOW}/delete", data={"csrf": csrf, "cancel": "true"})
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"/ui/flows?removed={FLOW}"
        assert browser.get(f"/ui/flows/{FLOW}").status_code == 404


def test_a_flow_registered_again_goes_on_from_its_last_version(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow()).status_code == 201
    changed = waiting_flow()
    changed["name"] = "Quote, wait, reply (v2)"
    assert setup.register(changed).status_code == 201
    with setup.admin() as admin:
        assert admin.delete(f"/flows/{FLOW}").status_code == 204
    again = setup.register(waiting_flow())
    assert again.status_code == 201, again.text
    assert again.json()["flow"]["version"] == 3
    with setup.admin() as admin:
        versions = admin.get(f"/flows/{FLOW}/versions").json()
    assert [v["version"] for v in versions] == [3, 2, 1]
