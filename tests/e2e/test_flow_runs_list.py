"""`GET /runs` and the console's Runs page: every flow's runs, newest first,
filtered by state, flow, user and start time; a user sees their own only, an
admin everyone's; bad filters are refused, not ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import POLICY, FlowSetup, flow_setup


def _flow(flow_id: str, skill: str) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": flow_id,
        "name": flow_id,
        "steps": [
            {
                "id": "call",
                "call": {"agent": "sales", "skill": skill},
                "input": "{sku: 'X-1', quantity: `1`}",
            }
        ],
    }


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[FlowSetup]:
    policy = POLICY + "  asks:\n    grant: [sales:quote]\n  quotes:\n    grant: [sales:quote]\n"
    with flow_setup(tmp_path, None, policy) as made:
        assert made.register(_flow("asks", "ship")).status_code == 201
        assert made.register(_flow("quotes", "quote")).status_code == 201
        yield made


def _start(setup: FlowSetup, user: str, flow_id: str, *states: str) -> dict[str, Any]:
    with setup.user(user) as client:
        started = client.post(f"/flows/{flow_id}/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        return setup.run(client, started.json(), *states)


def test_runs_across_flows_filtered(setup: FlowSetup) -> None:
    waiting = _start(setup, "dana", "asks", "input_required")
    done = _start(setup, "dana", "quotes", "completed")
    theirs = _start(setup, "erin", "quotes", "completed")
    with setup.user("dana") as dana, setup.admin() as admin:
        mine = [r["id"] for r in dana.get("/runs").json()]
        assert mine == [done["id"], waiting["id"]]  # newest first, hers only
        assert [r["id"] for r in dana.get("/runs", params={"state": "input_required"}).json()] == [
            waiting["id"]
        ]
        assert [r["id"] for r in dana.get("/runs", params={"flow": "quotes"}).json()] == [
            done["id"]
        ]
        # A user's "subject" filter is not someone else's runs.
        assert [r["id"] for r in dana.get("/runs", params={"subject": "erin"}).json()] == mine
        assert dana.get("/runs", params={"since": "2999-01-01T00:00:00"}).json() == []
        every = [r["id"] for r in admin.get("/runs").json()]
        assert every == [theirs["id"], done["id"], waiting["id"]]
        assert [r["id"] for r in admin.get("/runs", params={"subject": "erin"}).json()] == [
            theirs["id"]
        ]
        for bad in ({"state": "nope"}, {"limit": 0}, {"limit": 201}, {"since": "yesterday"}):
            assert dana.get("/runs", params=bad).status_code == 422, bad
        assert dana.get("/runs", params={"flow": "x" * 65}).status_code == 422

    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as web:
        dev_login(web, "dana", "sales:quote")
        page = web.get("/ui/runs", params={"state": "input_required"})
        assert page.status_code == 200
        assert waiting["id"] in page.text and done["id"] not in page.text
        assert theirs["id"] not in web.get("/ui/runs").text
        # Filters the page does not know are left out, not an error.
        assert web.get("/ui/runs", params={"state": "<b>", "since": "forever"}).status_code == 200


def test_start_a_run_from_the_form_built_from_its_input_schema(setup: FlowSetup) -> None:
    """The flow's page offers a field per property of its input schema; what
    the form sends becomes the run's input, checked by the API as ever."""
    document = {
        **_flow("typed", "quote"),
        "input": {
            "type": "object",
            "properties": {
                "sku": {"type": "string", "enum": ["X-1", "X-2"]},
                "quantity": {"type": "integer", "minimum": 1},
                "rush": {"type": "boolean"},
                "note": {"type": "object"},
            },
            "required": ["sku", "quantity"],
        },
    }
    setup.policy.write_text(setup.policy.read_text() + "  typed:\n    grant: [sales:quote]\n")
    assert setup.register(document).status_code == 201
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as web:
        csrf = dev_login(web, "dana", "sales:quote")
        shown = web.get("/ui/flows/typed").text
        assert 'name="f_quantity" type="number"' in shown and '<option value="X-2"' in shown
        assert 'type="checkbox" name="f_rush"' in shown
        assert '<textarea id="input-4" name="f_note"' in shown
        form = {"csrf": csrf, "f_sku": "X-2", "f_quantity": "4", "f_rush": "true"}
        form["f_note"] = '{"a": 1}'
        started = web.post("/ui/flows/typed/runs", data=form, follow_redirects=False)
        assert started.status_code == 303, started.text
        # The schema refuses what the form cannot: the page says why, keeps
        # what was typed, starts nothing.
        bad = web.post("/ui/flows/typed/runs", data={**form, "f_quantity": "0"})
        assert bad.status_code == 422 and 'id="start-errors"' in bad.text
        assert 'value="0"' in bad.text
        broken = web.post("/ui/flows/typed/runs", data={**form, "f_note": "{nope"})
        assert broken.status_code == 422 and "note: not JSON" in broken.text
        forged = web.post(
            "/ui/flows/typed/runs", data={k: v for k, v in form.items() if k != "csrf"}
        )
        assert forged.status_code == 403
    with setup.user("dana") as dana:
        runs = dana.get("/runs", params={"flow": "typed"}).json()
    assert len(runs) == 1
    assert runs[0]["input"] == {"sku": "X-2", "quantity": 4, "rush": True, "note": {"a": 1}}
