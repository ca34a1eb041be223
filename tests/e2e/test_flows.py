"""Flows end to end, on SQLite and PostgreSQL: an A2A agent (official a2a-sdk)
and an MCP server (official mcp SDK) called by a registered flow, over real
HTTP on 127.0.0.1, with the policy deciding every step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.flows import QUOTE_FLOW, FlowSetup, flow_setup


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url) as made:
        yield made


def test_a_small_order_runs_every_step_without_a_checkpoint(setup: FlowSetup) -> None:
    registered = setup.register(QUOTE_FLOW)
    assert registered.status_code == 201, registered.text
    with setup.user() as dana:
        started = dana.post(
            "/flows/quote-flow/runs",
            json={"input": {"sku": "X-100", "quantity": 10, "customer": "ACME"}},
        )
        assert started.status_code == 202, started.text
        run = setup.run(dana, started.json(), "completed", "failed")
    assert run["state"] == "completed", run
    assert run["output"]["quote"]["total"] == 118.75
    assert run["output"]["stock"]["enough"] is True
    assert "Dear ACME" in run["output"]["reply"]
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["manager"]["state"] == "skipped"
    assert steps["quote"]["token"]["actors"][-1] == "quote-flow"
    assert steps["quote"]["token"]["scopes"] == ["sales:quote"]
    assert steps["stock"]["token"]["scopes"] == ["inventory:read"]
    assert setup.desk.count("quote") == 1
