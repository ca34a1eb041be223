"""What runs cost, and budgets (`policies.prices`), end to end on both
databases: the policy prices the sales desk's calls; each completed step
records its cost; the run, `GET /flows/{id}/usage` and `GET /usage` sum
them; a user's budget for the flow refuses a new run at exactly its limit
and stops a run going on at its next call step; another user's budget is
their own; the desk counts what it was sent."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from policies.rules import Policy
from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import POLICY, FlowSetup, flow_setup

TWICE: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "quote-twice",
    "name": "Two quotes, one after the other",
    "steps": [
        {
            "id": "first",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'A', quantity: `1`}",
        },
        {
            "id": "second",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'B', quantity: `2`}",
        },
    ],
}
PRICES = """\
  quote-twice:
    grant: [sales:quote]
prices:
  currency: EUR
  targets:
    sales: {per_call: "0.01"}
  budgets:
    - flow: quote-twice
      per_user: "0.03"
      period: day
"""


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, POLICY + PRICES) as made:
        assert made.register(TWICE).status_code == 201
        yield made


def _run(setup: FlowSetup, user: str) -> dict[str, Any]:
    with setup.user(user) as client:
        started = client.post("/flows/quote-twice/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        return setup.run(client, started.json(), "completed", "failed")


def test_runs_cost_what_the_policy_prices_and_budgets_stop_them(setup: FlowSetup) -> None:
    first = _run(setup, "dana")
    assert first["state"] == "completed", first
    assert Decimal(first["usage"]["cost"]) == Decimal("0.02")
    assert first["usage"]["currency"] == "EUR"
    assert [Decimal(s["usage"]["cost"]) for s in first["steps"]] == [Decimal("0.01")] * 2
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as web:
        dev_login(web, "dana", "sales:quote")
        page = web.get(f"/ui/flows/quote-twice/runs/{first['id']}")
        assert page.status_code == 200
        assert '<dd id="run-cost">0.02 EUR' in page.text

    # 0.02 spent: the run starts; its first step makes it 0.03, the budget,
    # and the run stops at its second.
    second = _run(setup, "dana")
    assert second["state"] == "failed", second
    assert "budget for flow quote-twice is spent: 0.03 EUR of 0.03 EUR" in second["error"]
    steps = {s["id"]: s for s in second["steps"]}
    assert steps["first"]["state"] == "completed"
    assert steps["second"]["state"] == "failed"

    # At exactly the limit, a new run is refused, and nothing is sent.
    sent = setup.desk.count("quote")
    with setup.user("dana") as dana:
        refused = dana.post("/flows/quote-twice/runs", json={"input": {}})
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("budget-spent")
        assert len(dana.get("/flows/quote-twice/runs").json()) == 2
        mine = dana.get("/usage").json()
        assert Decimal(mine["cost"]) == Decimal("0.03")
        assert [u["subject"] for u in mine["by_user"]] == ["dana"]
        flow = dana.get("/flows/quote-twice/usage").json()
        assert Decimal(flow["cost"]) == Decimal("0.03")
        assert dana.get("/usage", params={"since": "2999-01-01T00:00:00Z"}).json()["runs"] == 0
    assert setup.desk.count("quote") == sent

    # Erin's budget is her own.
    assert _run(setup, "erin")["state"] == "completed"
    with setup.admin() as admin:
        everyone = admin.get("/usage").json()
        assert Decimal(everyone["cost"]) == Decimal("0.05")
        assert {u["subject"]: Decimal(u["cost"]) for u in everyone["by_user"]} == {
            "dana": Decimal("0.03"),
            "erin": Decimal("0.02"),
        }
        assert [f["flow_id"] for f in everyone["by_flow"]] == ["quote-twice"]
        one = admin.get("/usage", params={"subject": "erin"}).json()
        assert [u["subject"] for u in one["by_user"]] == ["erin"]
        refusals = [
            r
            for r in admin.get("/audit", params={"limit": 500}).json()["items"]
            if r["event"] == "flow.start" and r["outcome"] == "budget_spent"
        ]
        assert [r["subject"] for r in refusals] == ["dana"]
    assert setup.desk.count("quote") == 5


def test_a_price_table_that_is_no_price_table_is_refused() -> None:
    for bad in (
        {"targets": {"sales": {"per_call": "-1"}}},
        {"targets": {"sales": {"per_call": "1e9"}}},
        {"targets": {"sales": {"per_cal": "1"}}},
        {"budgets": [{"flow": "x", "per_user": "1", "period": "week"}]},
        {"currency": "<script>"},
    ):
        with pytest.raises(ValidationError):
            Policy.model_validate({"prices": bad})


def test_listed_runs_carry_their_usage(setup: FlowSetup) -> None:
    """Issue 57: `GET /runs` (and a flow's runs) said `"usage": null` of every
    run, so the console's Runs page showed no cost, though each run's own
    page did."""
    whole = _run(setup, "dana")  # two steps at 0.01
    stopped = _run(setup, "dana")  # stopped by the budget after its first
    assert stopped["state"] == "failed", stopped
    expected = {whole["id"]: Decimal("0.02"), stopped["id"]: Decimal("0.01")}
    with setup.user("dana") as dana:
        for path in ("/runs", "/flows/quote-twice/runs"):
            listed = dana.get(path).json()
            assert {r["id"]: Decimal(r["usage"]["cost"]) for r in listed} == expected, path
            assert {r["usage"]["currency"] for r in listed} == {"EUR"}
            assert [r["usage"]["total_tokens"] for r in listed] == [
                dana.get(f"/flows/quote-twice/runs/{r['id']}").json()["usage"]["total_tokens"]
                for r in listed
            ]
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as web:
        dev_login(web, "dana", "sales:quote")
        page = web.get("/ui/runs")
        assert page.status_code == 200
        assert "<td>0.02 EUR</td>" in page.text and "<td>0.01 EUR</td>" in page.text, page.text
