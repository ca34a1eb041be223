"""Questions from inside a fan-out (`gateway.flows.fanout`), end to end on
both databases: a parallel branch's or a map item's agent (the sales desk's
``ship``, official a2a-sdk) asks which warehouse ships the order. Once the
fan-out has settled, the run asks -- one question at a time, in the
branches' or items' order -- its own user (no one else), or the flow's
expression answers; the answer goes to the same task; a join decided
meanwhile cancels the asking branch's task instead. Every message the desk
got is counted: nothing is sent twice, across a SIGKILL too."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.flow_crash import crashable
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.waiting import wait_for

SHIP = {"agent": "sales", "skill": "ship"}
BOTH_WAYS: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ship-both",
    "name": "Ship two orders at once",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "both",
            "parallel": {
                "branches": [
                    {"id": "first", "call": SHIP, "input": "{sku: 'A-1', quantity: `1`}"},
                    {"id": "second", "call": SHIP, "input": "{sku: 'B-2', quantity: `2`}"},
                ]
            },
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'Ada', total: steps.second.output.eta_days}",
        },
    ],
    "output": "{both: steps.both.output, reply: steps.reply.text}",
}
EACH: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ship-each",
    "name": "Ship every order",
    "input": {
        "type": "object",
        "properties": {"orders": {"type": "array"}},
        "required": ["orders"],
    },
    "steps": [
        {
            "id": "shipped",
            "map": {
                "over": "input.orders",
                "concurrency": 2,
                "call": SHIP,
                "input": "{sku: item.sku, quantity: item.quantity}",
                # An order that says where it ships is answered by the flow;
                # the others are asked of the run's user.
                "questions": {"answer": "item.warehouse"},
            },
        }
    ],
}
FLOWS = ("ship-both", "ship-each", "ship-any")
FLOW_POLICY = POLICY + "".join(f"  {flow}:\n    grant: [sales:quote]\n" for flow in FLOWS)


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, FLOW_POLICY) as made:
        yield made


def _asking(run: dict[str, Any]) -> dict[str, Any]:
    """The step whose question the run waits at (others may wait their turn)."""
    (asking,) = [s for s in run["steps"] if s["id"] == run["current_step"]]
    assert isinstance(asking, dict) and asking["state"] == "input_required", asking
    assert isinstance(asking["output"].get("key"), str), asking  # opened for the user
    return asking


def _waits_at(setup: FlowSetup, client: httpx.Client, run: dict[str, Any], step: str) -> None:
    """Until the run asks the question of ``step``."""

    def asking() -> bool:
        seen = setup.run(client, run, "input_required", "failed", "completed")
        assert seen["state"] == "input_required", seen
        return bool(_asking(seen)["id"] == step)

    wait_for(asking, 30, every=0.1, what=f"the run asking the question of {step}")


def test_each_branch_asks_its_user_in_turn(setup: FlowSetup) -> None:
    assert setup.register(BOTH_WAYS).status_code == 201
    with setup.user() as dana, setup.user("erin") as erin, setup.admin() as admin:
        run = setup.start(dana, "ship-both", {})
        url = f"/flows/ship-both/runs/{run['id']}/answer"
        _waits_at(setup, dana, run, "first")
        asked = setup.run(dana, run, "input_required")
        first = _asking(asked)
        assert first["parent"] == "both"
        assert "Which warehouse ships 1 x A-1" in first["output"]["question"]
        # One question at a time: the second branch's waits its turn.
        assert {s["id"]: s["state"] for s in asked["steps"]}["second"] == "input_required"
        # No one but the run's user answers, an admin neither.
        for other in (erin, admin):
            assert other.post(url, json={"text": "north"}).status_code == 404
        assert dana.post(url, json={"text": "north", "step": "x" * 65}).status_code == 422
        first_answer = {"text": "north", "round": 1, "step": "first"}
        assert dana.post(url, json=first_answer).status_code == 202
        _waits_at(setup, dana, run, "second")
        # The first answer sent again (a retry, a stale form): each branch asks
        # from round 1, so the step tells it apart -- refused, not taken for
        # the second's.
        again = dana.post(url, json=first_answer)
        assert again.status_code == 409, again.text
        assert "asks at step second now, not first" in again.text
        assert dana.post(url, json={"text": "south", "step": "second"}).status_code == 202
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    shipped = done["output"]["both"]
    assert shipped["first"]["warehouse"] == "north" and shipped["second"]["eta_days"] == 4
    assert done["output"]["reply"] == "Dear Ada, your quote is 4.0 EUR."
    rid = run["id"]
    # Each branch's call once, each answer once, to the task that asked.
    assert sorted(setup.desk.sent("ship")) == sorted(
        [
            f"{rid}.first.1",
            f"{rid}.second.1",
            f"{rid}.first.1.answer1",
            f"{rid}.second.1.answer1",
        ]
    )


def test_a_join_decided_meanwhile_cancels_the_asking_branch(setup: FlowSetup) -> None:
    document = copy.deepcopy(BOTH_WAYS)
    document["id"] = "ship-any"
    document["steps"][0]["parallel"]["join"] = "any"
    # The first branch works a second, then completes (it never asks); the
    # second asks at once: the fan-out settles with it waiting, and the join
    # is met without it.
    document["steps"][0]["parallel"]["branches"][0] = {
        "id": "first",
        "call": {"agent": "sales", "skill": "work"},
        "input": "{seconds: `1`}",
    }
    document["steps"][1]["input"] = "{customer: 'Ada', total: steps.first.output.worked}"
    document["output"] = "steps.both.output"
    assert setup.register(document).status_code == 201
    with setup.user() as dana:
        done = setup.run(dana, setup.start(dana, "ship-any", {}), "completed", "failed")
    assert done["state"] == "completed", done
    assert done["output"] == {"first": {"worked": 1}}
    second = next(s for s in done["steps"] if s["id"] == "second")
    assert second["state"] == "not_needed", second
    # Its agent's task, which asked, is cancelled as the run's user; nobody was asked.
    task = second["upstream_task_id"]
    assert task and len(setup.desk.sent("ship")) == 1
    with setup.admin() as admin:
        audit = admin.get("/audit", params={"trace": done["trace_id"], "limit": 200})
    assert audit.status_code == 200, audit.text
    items = audit.json()["items"]
    cancels = [i for i in items if i["event"] == "a2a.CancelTask"]
    assert [(i["subject"], i["outcome"]) for i in cancels] == [("dana", "ok")], cancels
    assert not [i for i in items if i["event"] == "flow.answer"]


def test_a_maps_items_are_answered_by_the_flow_or_asked_in_turn(setup: FlowSetup) -> None:
    assert setup.register(EACH).status_code == 201
    orders = [
        {"sku": "A-1", "quantity": 1, "warehouse": "south"},
        {"sku": "B-2", "quantity": 2},
        {"sku": "C-3", "quantity": 3, "warehouse": "north"},
    ]
    with setup.user() as dana:
        run = setup.start(dana, "ship-each", {"orders": orders})
        _waits_at(setup, dana, run, "shipped[1]")
        asked = _asking(setup.run(dana, run, "input_required"))
        assert "Which warehouse ships 2 x B-2" in asked["output"]["question"]
        answered = dana.post(f"/flows/ship-each/runs/{run['id']}/answer", json={"text": "north"})
        assert answered.status_code == 202, answered.text
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    assert [o["warehouse"] for o in done["output"]] == ["south", "north", "north"]
    rid = run["id"]
    assert sorted(setup.desk.sent("ship")) == sorted(
        [f"{rid}.shipped[{i}].1" for i in range(3)]
        + [f"{rid}.shipped[{i}].1.answer1" for i in range(3)]
    )


def test_what_a_maps_answer_may_read(setup: FlowSetup) -> None:
    document = copy.deepcopy(EACH)
    document["steps"][0]["map"]["questions"] = {"answer": "steps.later.output"}
    document["steps"].append(
        {"id": "later", "call": {"agent": "sales", "skill": "reply"}, "input": "input"}
    )
    refused = setup.register(document)
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert any(
        e["field"] == "steps[0].map.questions.answer" and "has not run yet" in e["message"]
        for e in errors
    ), errors


@pytest.mark.crash
def test_a_branchs_question_pending_across_a_sigkill(
    tmp_path: Path, database_url: str | None
) -> None:
    """The gateway SIGKILLed while the second branch's question waits: started
    again, the run waits at the same question, takes the answer, and the
    desk got each message once."""

    def asking(step: str) -> Callable[[dict[str, Any]], bool]:
        def at(run: dict[str, Any]) -> bool:
            return bool(run["state"] == "input_required" and run["current_step"] == step)

        return at

    with crashable(tmp_path, database_url, FLOW_POLICY, BOTH_WAYS) as world:
        run_id = world.start("ship-both", {})

        def answer(text: str, step: str) -> None:
            with world.gateway.client("dana", "sales:quote") as dana:
                url = f"/flows/ship-both/runs/{run_id}/answer"
                answered = dana.post(url, json={"text": text, "step": step})
            assert answered.status_code == 202, answered.text

        world.until("ship-both", run_id, asking("first"))
        answer("north", "first")
        world.until("ship-both", run_id, asking("second"))
        world.restart()
        world.until("ship-both", run_id, asking("second"))
        answer("south", "second")
        done = world.ended("ship-both", run_id)
        assert done["state"] == "completed", done
        assert done["output"]["both"]["second"]["warehouse"] == "south"
        assert sorted(world.sent("ship")) == sorted(
            [
                f"{run_id}.first.1",
                f"{run_id}.second.1",
                f"{run_id}.first.1.answer1",
                f"{run_id}.second.1.answer1",
            ]
        )
