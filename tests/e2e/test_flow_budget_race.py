"""Budgets reserved, not only checked, end to end on both databases: a user
with 2.00 to spend on a flow whose calls cost 1.00 each makes two calls and
no more, however many runs they start at once (eight, over HTTP, together)
or however many calls one run makes at once (a map of eight items); what
the user spent is what the budget allows, and the others are refused,
saying so (`gateway.flows.reservations`)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from threading import Barrier
from typing import Any

import httpx
import pytest

from tests.support.flows import POLICY, USER_SCOPES, FlowSetup, flow_setup

ONCE: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "work-once",
    "name": "One priced call that takes a while",
    "steps": [
        {"id": "work", "call": {"agent": "sales", "skill": "work"}, "input": "{seconds: `1`}"}
    ],
}
MANY: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "work-many",
    "name": "Eight priced calls at once",
    "steps": [
        {
            "id": "each",
            "map": {
                "over": "[`1`, `1`, `1`, `1`, `1`, `1`, `1`, `1`]",
                "concurrency": 8,
                "call": {"agent": "sales", "skill": "work"},
                "input": "{seconds: item}",
            },
        }
    ],
}
PRICES = """\
  work-once:
    grant: [sales:quote]
  work-many:
    grant: [sales:quote]
prices:
  currency: EUR
  targets:
    sales: {per_call: "1.00"}
  budgets:
    - flow: "*"
      per_user: "2.00"
      period: day
"""
STARTS = 8


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, POLICY + PRICES) as made:
        for document in (ONCE, MANY):
            assert made.register(document).status_code == 201
        yield made


def _spent(client: httpx.Client, flow: str) -> Decimal:
    usage = client.get(f"/flows/{flow}/usage")
    assert usage.status_code == 200, usage.text
    return Decimal(usage.json()["cost"] or 0)


def test_runs_started_together_spend_no_more_than_the_budget(setup: FlowSetup) -> None:
    together = Barrier(STARTS)
    # One token for all: minting reads the gateway's key from its database.
    token = setup.gateway.token("dana", USER_SCOPES)

    def start(_: int) -> httpx.Response:
        with setup.gateway.client(token) as client:
            together.wait()
            return client.post("/flows/work-once/runs", json={"input": {}})

    with ThreadPoolExecutor(STARTS) as pool:
        answers = list(pool.map(start, range(STARTS)))
    started = [a.json() for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code != 202]
    assert all(a.status_code == 403 for a in refused), [a.text for a in refused]
    assert all(a.json()["type"].endswith("budget-spent") for a in refused)
    with setup.user("dana") as dana:
        ended = [setup.run(dana, run, "completed", "failed") for run in started]
        completed = [run for run in ended if run["state"] == "completed"]
        assert len(completed) == 2, ended
        for run in ended:
            if run["state"] == "failed":
                assert "budget for flow work-once is spent" in run["error"], run
        assert setup.desk.count("work") == 2
        assert _spent(dana, "work-once") == Decimal("2.00")
        # One after the others: refused at its start, nothing sent.
        late = dana.post("/flows/work-once/runs", json={"input": {}})
        assert late.status_code == 403, late.text
    assert setup.desk.count("work") == 2


def test_calls_made_together_by_one_run_spend_no_more_than_the_budget(setup: FlowSetup) -> None:
    with setup.user("erin") as erin:
        run = setup.run(erin, setup.start(erin, "work-many", {}), "completed", "failed")
        assert run["state"] == "failed", run
        items = [s for s in run["steps"] if s.get("parent") == "each"]
        done = [s for s in items if s["state"] == "completed"]
        assert len(done) == 2, items
        refused = [s for s in items if "budget for flow work-many is spent" in (s["error"] or "")]
        assert refused, items
        assert setup.desk.count("work") == 2
        assert _spent(erin, "work-many") == Decimal("2.00")
