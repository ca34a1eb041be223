"""`on_error: checkpoint` on a map, a parallel branch and a parallel step
(SQLite and PostgreSQL), against the real sales desk (an official-SDK A2A
agent) that fails to quote a SKU while it is in `SalesDesk.failing`.

A map asks once for the step, with every failed item in the prompt; approved,
only the failed items are called again. A failed branch asks once its
siblings have settled; approved, it alone is called again. Rejected, the run
ends rejected. The same approvals desk as a call step's review."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.flows import POLICY, FlowSetup, flow_setup

ORDERS = {"orders": [{"sku": "A-1"}, {"sku": "B-2"}, {"sku": "C-3"}]}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests: each registers its own
    version of fanout and starts its run right after it (a run keeps the
    version it started with)."""
    with flow_setup(
        tmp_path_factory.mktemp("fanout-reviews"),
        module_database_url,
        POLICY + "  fanout:\n    grant: [sales:quote]\n",
    ) as made:
        yield made


# Per desk: how many messages it had got when the running test began.
_DESK_FROM: dict[int, int] = {}


@pytest.fixture
def setup(deployment: FlowSetup) -> Iterator[FlowSetup]:
    """The module's gateway, its desk failing no sku; from here on, the desk's
    messages are the test's own (`sent`)."""
    desk = deployment.desk
    with desk.lock:
        desk.failing.clear()
        _DESK_FROM[id(desk)] = len(desk.received)
    yield deployment
    desk.failing.clear()  # a rejected run's test leaves its skus failing


def flow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": "fanout",
        "name": "Fan out, a human deciding on failure",
        "input": {"type": "object"},
        "steps": list(steps),
    }


def quotes(**extra: Any) -> dict[str, Any]:
    return {
        "id": "quotes",
        "map": {
            "over": "input.orders",
            "concurrency": 3,
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: item.sku, quantity: `2`}",
        },
        "on_error": "checkpoint",
        **extra,
    }


def quote(step_id: str, sku: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "call": {"agent": "sales", "skill": "quote"},
        "input": f"{{sku: '{sku}', quantity: `2`}}",
        **extra,
    }


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in run["steps"]}


def sent(setup: FlowSetup, sku: str) -> int:
    """How many messages for ``sku`` the desk got since the test began."""
    with setup.desk.lock:
        since = setup.desk.received[_DESK_FROM.get(id(setup.desk), 0) :]
        return sum(1 for r in since if r["data"].get("sku") == sku)


def waiting_at(
    setup: FlowSetup, document: dict[str, Any], review: str, run_input: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run, stopped at the review ``review``; and that review's record."""
    registered = setup.register(document)
    assert registered.status_code in (200, 201), registered.text
    with setup.user() as dana:
        started = dana.post("/flows/fanout/runs", json={"input": run_input})
        assert started.status_code == 202, started.text
        run = setup.run(dana, started.json(), "input_required", "completed", "failed")
    assert run["state"] == "input_required", run
    found = steps_of(run)[review]
    assert found["state"] == "waiting" and found["approval_id"], found
    return run, found


def decide(setup: FlowSetup, run: dict[str, Any], approval: str, decision: str) -> dict[str, Any]:
    with setup.admin() as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": decision})
        assert decided.status_code == 200, decided.text
    with setup.user() as dana:
        return setup.run(dana, run, "completed", "failed", "rejected")


def test_a_map_item_failing_asks_once_and_approved_calls_only_that_item_again(
    setup: FlowSetup,
) -> None:
    setup.desk.failing.add("B-2")
    run, review = waiting_at(setup, flow(quotes()), "quotes_review1", ORDERS)
    seen = steps_of(run)
    assert seen["quotes"]["state"] == "failed"
    assert [seen[f"quotes[{i}]"]["state"] for i in range(3)] == ["completed", "failed", "completed"]
    with setup.admin() as admin:
        asked = admin.get(f"/approvals/{review['approval_id']}").json()
    prompt = asked["request"]["prompt"]
    assert prompt.startswith("Step quotes (sales) failed: 1 of 3 items failed: [1]: ")
    assert "no price for B-2 now" in prompt and "call the items that failed again" in prompt
    assert asked["kind"] == "flow" and asked["state"] == "pending"
    setup.desk.failing.clear()  # the upstream is fine again
    done = decide(setup, run, review["approval_id"], "approve")
    assert done["state"] == "completed", done
    seen = steps_of(done)
    assert [q["sku"] for q in seen["quotes"]["output"]] == ["A-1", "B-2", "C-3"]
    assert seen["quotes_review1"]["state"] == "completed"
    assert "quotes_review2" not in seen
    # The items done were not called again; the failed one was, once.
    assert [sent(setup, s) for s in ("A-1", "B-2", "C-3")] == [1, 2, 1]
    assert seen["quotes[1]"]["state"] == "completed" and seen["quotes[1]"]["attempts"] == 1


def test_a_map_review_rejected_ends_the_run_rejected(setup: FlowSetup) -> None:
    setup.desk.failing.update({"A-1", "C-3"})
    after = quote("after", "Z-9")
    run, review = waiting_at(setup, flow(quotes(), after), "quotes_review1", ORDERS)
    with setup.admin() as admin:
        prompt = admin.get(f"/approvals/{review['approval_id']}").json()["request"]["prompt"]
    assert "2 of 3 items failed: [0]: " in prompt and "; [2]: " in prompt
    done = decide(setup, run, review["approval_id"], "reject")
    assert done["state"] == "rejected", done
    assert "quotes_review1 rejected" in done["error"]
    assert [sent(setup, s) for s in ("A-1", "B-2", "C-3", "Z-9")] == [1, 1, 1, 0]


def test_a_failed_branch_asks_and_approved_only_it_is_called_again(setup: FlowSetup) -> None:
    setup.desk.failing.add("F-1")
    branches = [quote("steady", "S-1"), quote("shaky", "F-1", on_error="checkpoint")]
    document = flow({"id": "both", "parallel": {"join": "all", "branches": branches}})
    run, review = waiting_at(setup, document, "shaky_review1", {})
    seen = steps_of(run)
    assert seen["steady"]["state"] == "completed"  # its sibling settled first
    assert seen["shaky"]["state"] == "failed" and seen["shaky"]["parent"] == "both"
    with setup.admin() as admin:
        prompt = admin.get(f"/approvals/{review['approval_id']}").json()["request"]["prompt"]
    assert prompt.startswith("Step shaky (sales) failed: ") and "call it again" in prompt
    setup.desk.failing.clear()
    done = decide(setup, run, review["approval_id"], "approve")
    assert done["state"] == "completed", done
    seen = steps_of(done)
    assert sorted(seen["both"]["output"]) == ["shaky", "steady"]
    assert seen["shaky"]["state"] == "completed" and seen["shaky"]["parent"] == "both"
    assert [sent(setup, s) for s in ("S-1", "F-1")] == [1, 2]


def test_a_failed_branch_rejected_ends_the_run_rejected(setup: FlowSetup) -> None:
    setup.desk.failing.add("F-1")
    branches = [quote("steady", "S-1"), quote("shaky", "F-1", on_error="checkpoint")]
    document = flow({"id": "both", "parallel": {"branches": branches}}, quote("after", "Z-9"))
    run, review = waiting_at(setup, document, "shaky_review1", {})
    done = decide(setup, run, review["approval_id"], "reject")
    assert done["state"] == "rejected", done
    assert steps_of(done)["both"]["state"] == "failed"
    assert [sent(setup, s) for s in ("S-1", "F-1", "Z-9")] == [1, 1, 0]


def test_a_parallel_step_not_joined_asks_and_approved_runs_what_did_not_complete(
    setup: FlowSetup,
) -> None:
    setup.desk.failing.update({"F-1", "F-2"})
    branches = [quote("one", "F-1"), quote("two", "F-2")]
    document = flow(
        {"id": "both", "parallel": {"join": "any", "branches": branches}, "on_error": "checkpoint"}
    )
    run, review = waiting_at(setup, document, "both_review1", {})
    assert steps_of(run)["both"]["state"] == "failed"
    with setup.admin() as admin:
        prompt = admin.get(f"/approvals/{review['approval_id']}").json()["request"]["prompt"]
    assert prompt.startswith("Step both (parallel) failed: join any not met (one: ")
    assert "run the branches that did not complete again" in prompt
    setup.desk.failing.clear()
    done = decide(setup, run, review["approval_id"], "approve")
    assert done["state"] == "completed", done
    assert len(steps_of(done)["both"]["output"]) >= 1
    assert 3 <= sent(setup, "F-1") + sent(setup, "F-2") <= 4


def test_on_error_skip_past_a_failed_branch_meets_a_join_all(setup: FlowSetup) -> None:
    # docs/flows.md: all is met when every branch completes, or is skipped by
    # its when or past its failure by on_error: skip.
    setup.desk.failing.add("F-1")
    branches = [quote("steady", "S-1"), quote("shaky", "F-1", on_error="skip")]
    registered = setup.register(flow({"id": "both", "parallel": {"branches": branches}}))
    assert registered.status_code in (200, 201), registered.text
    with setup.user() as dana:
        started = dana.post("/flows/fanout/runs", json={"input": {}}).json()
        done = setup.run(dana, started, "completed", "failed")
    assert done["state"] == "completed", done
    assert list(steps_of(done)["both"]["output"]) == ["steady"]


def test_a_parallel_review_needs_a_short_enough_id(setup: FlowSetup) -> None:
    branches = [quote("one", "A-1"), quote("two", "B-2")]
    step = {"id": "p" * 53, "parallel": {"branches": branches}, "on_error": "checkpoint"}
    refused = setup.register(flow(step))
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert errors == [
        {
            "step": "p" * 53,
            "field": "steps[0].id",
            "message": "with on_error: checkpoint, a step id is at most 52 characters "
            "(its reviews are recorded as <id>_review<n>)",
        }
    ]
