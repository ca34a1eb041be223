"""`wait` steps (SQLite and PostgreSQL): a run waits for an event posted to
it -- here a payment confirmed -- and goes on with the event's body; an event
posted before the run reaches the step is kept for it; no event in time fails
the run or goes on, as the step says; an event the run does not wait for, or
to someone else's run, is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.waiting import wait_for


def waiting_flow(**wait: Any) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": "pay-then-reply",
        "name": "Quote, wait for the payment, reply",
        "input": {"type": "object"},
        "steps": [
            {
                "id": "quote",
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: 'W-1', quantity: `2`}",
            },
            {"id": "paid", "wait": {"event": "payment", **wait}},
            {
                "id": "reply",
                "call": {"agent": "sales", "skill": "reply"},
                "input": "{customer: steps.paid.output.payer, total: steps.quote.output.total}",
            },
        ],
    }


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY + "  pay-then-reply:\n    grant: [sales:quote]\n"
    with flow_setup(tmp_path, database_url, policy) as made:
        yield made


def _start(setup: FlowSetup, client: httpx.Client) -> dict[str, Any]:
    started = client.post("/flows/pay-then-reply/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def _until_waiting(client: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:

    def waiting() -> dict[str, Any] | None:
        seen: dict[str, Any] = client.get(f"/flows/pay-then-reply/runs/{run['id']}").json()
        steps = {s["id"]: s["state"] for s in seen["steps"]}
        return seen if steps.get("paid") == "waiting" else None

    return wait_for(waiting, 20, what="the run waiting for the payment")


def test_the_run_goes_on_with_the_event_it_waited_for(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow()).status_code == 201
    with setup.user() as dana:
        run = _until_waiting(dana, _start(setup, dana))
        assert run["state"] == "working" and run["current_step"] == "paid"
        posted = dana.post(
            f"/flows/pay-then-reply/runs/{run['id']}/events/payment",
            json={"payer": "ACME Ltd", "amount": 23.75},
        )
        assert posted.status_code == 202, posted.text
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["paid"]["output"] == {"payer": "ACME Ltd", "amount": 23.75}
    assert "Dear ACME Ltd" in steps["reply"]["output"]
    with setup.admin() as admin:
        audit = admin.get("/audit", params={"agent": "pay-then-reply", "limit": 50}).json()
    assert any(r["event"] == "flow.event" and r["action"] == "payment" for r in audit["items"])


def test_an_event_posted_early_is_kept_for_the_step(setup: FlowSetup) -> None:
    document = waiting_flow()
    # A slow first step: the event arrives while the run is still at it.
    document["steps"].insert(
        0, {"id": "slow", "call": {"agent": "sales", "skill": "work"}, "input": "{seconds: `1`}"}
    )
    assert setup.register(document).status_code == 201
    with setup.user() as dana:
        run = _start(setup, dana)
        early = dana.post(
            f"/flows/pay-then-reply/runs/{run['id']}/events/payment", json={"payer": "Early"}
        )
        assert early.status_code == 202, early.text
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    assert {s["id"]: s for s in done["steps"]}["paid"]["output"] == {"payer": "Early"}


@pytest.mark.parametrize("on_timeout", ["fail", "continue"])
def test_no_event_in_time(setup: FlowSetup, on_timeout: str) -> None:
    document = waiting_flow(timeout_seconds=0.5, on_timeout=on_timeout)
    document["steps"][2]["input"] = "{customer: 'nobody', total: steps.quote.output.total}"
    assert setup.register(document).status_code == 201
    with setup.user() as dana:
        done = setup.run(dana, _start(setup, dana), "completed", "failed")
    paid = {s["id"]: s for s in done["steps"]}["paid"]
    assert "no event payment within 0.5 s" in paid["error"]
    if on_timeout == "fail":
        assert done["state"] == "failed" and paid["state"] == "failed"
    else:
        assert done["state"] == "completed" and paid["output"] is None


def test_events_the_run_does_not_wait_for_or_not_yours_are_refused(setup: FlowSetup) -> None:
    assert setup.register(waiting_flow()).status_code == 201
    with setup.user() as dana, setup.user("erin") as erin:
        run = _until_waiting(dana, _start(setup, dana))
        url = f"/flows/pay-then-reply/runs/{run['id']}/events"
        assert dana.post(f"{url}/refund", json={}).status_code == 404
        assert dana.post(f"{url}/bad%20name", json={}).status_code == 422
        assert dana.post(f"{url}/payment", json=["not", "an", "object"]).status_code == 422
        assert erin.post(f"{url}/payment", json={"payer": "Mallory"}).status_code == 404
        assert dana.post(f"{url}/payment", json={"payer": "Dana"}).status_code == 202
        done = setup.run(dana, run, "completed", "failed")
        assert {s["id"]: s for s in done["steps"]}["paid"]["output"] == {"payer": "Dana"}
        # The run has ended: nothing more to deliver.
        assert dana.post(f"{url}/payment", json={}).status_code == 409
