"""The run page, live (`gateway.console.run_live`): a stream of server-sent
events that carries the run's state, its graph and its steps each time they
change, to the run's own user only, and ends with the run."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import QUOTE_FLOW, FlowSetup, flow_setup

BIG = {"sku": "X-100", "quantity": 100, "customer": "Ada"}


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url) as made:
        assert made.register(QUOTE_FLOW).status_code == 201
        yield made


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The ``run`` events of an SSE stream, as they come."""
    kind, data = "", ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line == "" and kind:
            if kind == "run":
                yield json.loads(data)
            kind, data = "", ""


def test_the_stream_follows_the_run_to_its_end(setup: FlowSetup) -> None:
    with setup.user() as dana:
        started = dana.post("/flows/quote-flow/runs", json={"input": BIG})
        assert started.status_code == 202, started.text
        run = setup.run(dana, started.json(), "input_required")
    approval = next(s for s in run["steps"] if s["id"] == "manager")["approval_id"]
    live = f"/ui/flows/quote-flow/runs/{run['id']}/live"
    web = httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls())
    erin = httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls())
    with web, erin:
        dev_login(web, "dana", "sales:quote inventory:read")
        dev_login(erin, "erin", "sales:quote inventory:read")
        assert erin.get(live).status_code == 404
        assert (
            httpx.get(
                setup.gateway.url + live, follow_redirects=False, verify=client_tls()
            ).status_code
            == 303
        )
        page = web.get(f"/ui/flows/quote-flow/runs/{run['id']}")
        assert 'src="/ui/static/live.js"' in page.text and 'id="graph"' in page.text
        seen: list[dict[str, Any]] = []
        with web.stream("GET", live) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for event in _events(stream.iter_lines()):
                seen.append(event)
                if len(seen) == 1:
                    with setup.admin() as admin:
                        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
                        assert decided.status_code == 200, decided.text
        # The stream ended by itself, with the run.
    first, last = seen[0], seen[-1]
    assert first["state"] == "input_required"
    assert 'id="node-manager"' in first["live"] and "node-waiting" in first["live"]
    assert 'class="graph-box"' in first["live"]  # the parallel step's branches, boxed
    assert "at <strong>manager</strong>" in first["head"]
    assert last["state"] == "completed", last
    assert 'class="graph-node node-completed" id="node-reply"' in last["live"]
    # Sent only when something changed: no two in a row alike.
    assert all(a != b for a, b in itertools.pairwise(seen))
