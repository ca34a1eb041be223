"""`on_error: checkpoint` (SQLite and PostgreSQL): a call that fails asks a
human on the approvals desk, with the error in the prompt; approved, the step
is called again from scratch (here after its agent came back); rejected, the
run ends rejected. Registration refuses it where it cannot work."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from gateway.demo.flow_agents import QUOTE_CONTRACT, SalesDesk, sales_card, sales_desk_app
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.servers import ServerThread, refusing_port

REVIEWED: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "reviewed",
    "name": "Quote at the backup desk, a human deciding on failure",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "priced",
            "call": {"agent": "backup", "skill": "quote"},
            "input": "{sku: 'R-1', quantity: `3`}",
            "on_error": "checkpoint",
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'ACME', total: steps.priced.output.total}",
        },
    ],
}


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY + (
        "  reviewed:\n    grant: [sales:quote]\n"
        "  backup:\n    require: [sales:quote]\n    grant: [sales:quote]\n"
    )
    with flow_setup(tmp_path, database_url, policy) as made:
        yield made


@pytest.fixture
def dead(setup: FlowSetup) -> Iterator[socket.socket]:
    """The backup desk registered and down: its interface is a port held
    bound and never listening, so its calls are refused -- a stopped server's
    port could be handed to another test's server meanwhile, one that answers
    (seen in CI: the step then succeeded)."""
    dead = refusing_port()
    url = f"http://127.0.0.1:{dead.getsockname()[1]}"
    card = MessageToDict(sales_card(url))
    with setup.admin() as admin:
        body = {"card": card, "id": "backup", "skill_contracts": {"quote": QUOTE_CONTRACT}}
        added = admin.post("/agents", json=body)
        assert added.status_code == 201, added.text
    with dead:
        yield dead


def _back(dead: socket.socket, desk: SalesDesk) -> ServerThread:
    """The backup desk back on its own port, never released meanwhile."""
    dead.listen(128)
    return ServerThread(lambda url: sales_desk_app(url, desk), sock=dead).start()


def _waiting_review(setup: FlowSetup) -> tuple[dict[str, Any], dict[str, Any]]:
    assert setup.register(REVIEWED).status_code == 201
    with setup.user() as dana:
        started = dana.post("/flows/reviewed/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        run = setup.run(dana, started.json(), "input_required", "failed")
    assert run["state"] == "input_required", run
    review = {s["id"]: s for s in run["steps"]}["priced_review1"]
    assert review["state"] == "waiting" and review["approval_id"]
    return run, review


def test_approved_the_failed_step_is_called_again(setup: FlowSetup, dead: socket.socket) -> None:
    desk = SalesDesk()  # the step's agent is down (`dead`): its call fails
    run, review = _waiting_review(setup)
    priced = {s["id"]: s for s in run["steps"]}["priced"]
    assert priced["state"] == "failed"
    with setup.admin() as admin:
        shown = admin.get(f"/approvals/{review['approval_id']}").json()
        assert "Step priced (backup) failed" in shown["request"]["prompt"]
        backup = _back(dead, desk)  # it is back
        try:
            decided = admin.post(
                f"/approvals/{review['approval_id']}", json={"decision": "approve"}
            )
            assert decided.status_code == 200, decided.text
            with setup.user() as dana:
                done = setup.run(dana, run, "completed", "failed", "rejected")
        finally:
            backup.stop()
    assert done["state"] == "completed", done
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["priced"]["state"] == "completed" and steps["priced"]["attempts"] == 1
    assert steps["priced"]["output"]["sku"] == "R-1"
    assert steps["priced_review1"]["state"] == "completed"
    assert desk.count("quote") == 1  # called again once, after the approval
    assert steps["reply"]["state"] == "completed"


def test_rejected_the_run_ends_rejected(setup: FlowSetup, dead: socket.socket) -> None:
    run, review = _waiting_review(setup)
    with setup.admin() as admin:
        admin.post(
            f"/approvals/{review['approval_id']}", json={"decision": "reject", "reason": "no"}
        )
    with setup.user() as dana:
        done = setup.run(dana, run, "completed", "failed", "rejected")
    assert done["state"] == "rejected", done
    assert setup.desk.count("reply") == 0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            {
                "id": "p" * 53,
                "call": {"agent": "sales", "skill": "quote"},
                "on_error": "checkpoint",
            },
            "at most 52",
        ),
        (
            {
                "id": "both",
                "parallel": {
                    "branches": [
                        {"id": "a", "call": {"agent": "sales", "skill": "quote"}},
                        {
                            "id": "b" * 53,
                            "call": {"agent": "sales", "skill": "quote"},
                            "on_error": "checkpoint",
                        },
                    ]
                },
            },
            "at most 52",  # a branch may ask a human too (test_flow_fanout_reviews.py)
        ),
    ],
)
def test_a_review_where_it_cannot_work_is_refused(
    setup: FlowSetup, change: dict[str, Any], says: str
) -> None:
    refused = setup.register({**REVIEWED, "steps": [change]})
    assert refused.status_code == 422, refused.text
    assert says in refused.text
