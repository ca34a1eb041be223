"""A parallel branch's and a map item's own steps (`gateway.flows.lanes`),
end to end on both databases with the sales desk (official a2a-sdk): a
branch quotes, routes on the total and replies while another branch works;
a map item ships (its agent asks, the flow or the run's user answers) and
then replies; a join decided meanwhile leaves a branch's later steps unsent;
a SIGKILL while an item's sequence waits at its question. Every message the
desk got is counted: nothing is sent twice."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.flow_crash import crashable
from tests.support.flows import POLICY, FlowSetup, flow_setup, messages_of
from tests.support.waiting import wait_for

SALES = "sales"
QUOTE = {"agent": SALES, "skill": "quote"}
REPLY = {"agent": SALES, "skill": "reply"}
SHIP = {"agent": SALES, "skill": "ship"}

PRICED: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "priced",
    "name": "Quote, and confirm a big order, while the desk works",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "both",
            "parallel": {
                "branches": [
                    {
                        "id": "slow",
                        "call": {"agent": SALES, "skill": "work"},
                        "input": "{seconds: `1`}",
                    },
                    {
                        "id": "deal",
                        "steps": [
                            {
                                "id": "price",
                                "call": QUOTE,
                                "input": "{sku: 'A-1', quantity: input.quantity}",
                            },
                            {
                                "id": "size",
                                "route": [
                                    {"when": "steps.price.output.total < `100`", "goto": "end"}
                                ],
                            },
                            {
                                "id": "confirm",
                                "call": REPLY,
                                "input": "{customer: 'Ada', total: steps.price.output.total}",
                            },
                        ],
                        "output": "{total: steps.price.output.total, said: steps.confirm.text}",
                    },
                ]
            },
        },
        {
            # A branch's steps are read after the parallel step as any step's.
            "id": "after",
            "call": REPLY,
            "input": "{customer: 'Bo', total: steps.price.output.total}",
        },
    ],
    "output": "{both: steps.both.output, after: steps.after.text}",
}
EACH: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ship-then-reply",
    "name": "Ship each order, then tell its customer",
    "input": {
        "type": "object",
        "properties": {"orders": {"type": "array"}},
        "required": ["orders"],
    },
    "steps": [
        {
            "id": "each",
            "map": {
                "over": "input.orders",
                "concurrency": 2,
                "steps": [
                    {
                        "id": "ship",
                        "call": SHIP,
                        "input": "{sku: item.sku, quantity: item.quantity}",
                        # An order that says where it ships is answered by the flow.
                        "questions": {"answer": "item.warehouse"},
                    },
                    {
                        "id": "tell",
                        "call": REPLY,
                        "input": "{customer: item.customer, total: steps.ship.output.eta_days}",
                    },
                ],
                "output": "{index: index, warehouse: steps.ship.output.warehouse, said: steps.tell.text}",
            },
        }
    ],
}
FLOWS = ("priced", "priced-any", "ship-then-reply", "priced-loop", "priced-review")
FLOW_POLICY = POLICY + "".join(f"  {flow}:\n    grant: [sales:quote]\n" for flow in FLOWS)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, PRICED and EACH registered
    once; a test's own variant goes under an id of its own. Each reads the
    desk's messages of its own runs (`messages_of`)."""
    with flow_setup(tmp_path_factory.mktemp("lanes"), module_database_url, FLOW_POLICY) as made:
        for document in (PRICED, EACH):
            registered = made.register(document)
            assert registered.status_code == 201, registered.text
        yield made


def _records(run: dict[str, Any]) -> dict[str, tuple[str, str | None, str]]:
    return {s["id"]: (s["kind"], s["parent"], s["state"]) for s in run["steps"]}


def test_a_branch_runs_its_own_steps_and_routes_within_them(setup: FlowSetup) -> None:
    with setup.user() as dana:
        big = setup.run(dana, setup.start(dana, "priced", {"quantity": 10}), "completed", "failed")
        small = setup.run(dana, setup.start(dana, "priced", {"quantity": 2}), "completed", "failed")
    assert big["state"] == "completed", big
    assert big["output"]["both"] == {
        "slow": {"worked": 1},
        "deal": {"total": 118.75, "said": "Dear Ada, your quote is 118.75 EUR."},
    }
    assert big["output"]["after"] == "Dear Bo, your quote is 118.75 EUR."
    records = _records(big)
    assert records["deal"] == ("steps", "both", "completed")
    assert records["price"] == ("call", "deal", "completed")
    assert records["size"] == ("route", "deal", "completed")
    assert records["confirm"] == ("call", "deal", "completed")
    # The small order's route ends the branch: its last step is skipped, not sent.
    assert small["state"] == "completed", small
    assert small["output"]["both"]["deal"] == {"total": 23.75, "said": ""}
    assert _records(small)["confirm"] == ("skipped", "deal", "skipped")
    rid_big, rid_small = big["id"], small["id"]
    assert sorted(messages_of(setup.desk.sent("quote"), big, small)) == sorted(
        [f"{rid_big}.price.1", f"{rid_small}.price.1"]
    )
    assert sorted(messages_of(setup.desk.sent("reply"), big, small)) == sorted(
        [f"{rid_big}.confirm.1", f"{rid_big}.after.1", f"{rid_small}.after.1"]
    )


def test_a_join_decided_leaves_a_branchs_later_steps_unsent(setup: FlowSetup) -> None:
    document = copy.deepcopy(PRICED)
    document["id"] = "priced-any"
    parallel = document["steps"][0]["parallel"]
    parallel["join"] = "any"
    # The quote completes at once; the other branch works two seconds, then would reply.
    parallel["branches"][0] = {
        "id": "slow_first",
        "call": QUOTE,
        "input": "{sku: 'B-2', quantity: `1`}",
    }
    parallel["branches"][1] = {
        "id": "deal",
        "steps": [
            {"id": "work", "call": {"agent": SALES, "skill": "work"}, "input": "{seconds: `2`}"},
            {"id": "confirm", "call": REPLY, "input": "{customer: 'Ada', total: `1`}"},
        ],
    }
    document["steps"] = document["steps"][:1]
    document["output"] = "steps.both.output"
    assert setup.register(document).status_code == 201
    with setup.user() as dana:
        done = setup.run(dana, setup.start(dana, "priced-any", {}), "completed", "failed")
    assert done["state"] == "completed", done
    assert list(done["output"]) == ["slow_first"]
    records = _records(done)
    assert records["deal"][2] == "not_needed" and records["work"][2] == "not_needed", records
    assert "confirm" not in records
    assert messages_of(setup.desk.sent("reply"), done) == []
    # The branch's first step was sent once if it had started before the
    # quote decided the join (the usual case), or not at all when the quote
    # won first (seen under load): never twice, and its next step never.
    assert messages_of(setup.desk.sent("work"), done) in ([], [f"{done['id']}.work.1"])


def test_a_maps_items_run_their_steps_and_ask_in_turn(setup: FlowSetup) -> None:
    orders = [
        {"sku": "A-1", "quantity": 1, "warehouse": "south", "customer": "Ada"},
        {"sku": "B-2", "quantity": 2, "customer": "Bo"},
        {"sku": "C-3", "quantity": 3, "warehouse": "north", "customer": "Cy"},
    ]
    with setup.user() as dana, setup.user("erin") as erin:
        run = setup.start(dana, "ship-then-reply", {"orders": orders})
        url = f"/flows/ship-then-reply/runs/{run['id']}/answer"

        def second_asks() -> dict[str, Any] | None:
            asked = setup.run(dana, run, "input_required", "failed", "completed")
            assert asked["state"] == "input_required", asked
            return asked if asked["current_step"] == "each[1].ship" else None

        asked = wait_for(second_asks, 30, every=0.1, what="the second item's agent asking")
        # Every item's agent asked; once the map settled, the items go on in
        # order: the first (answered by the flow) ran its last step, the
        # second waits for its user, the third for its turn.
        records = _records(asked)
        assert records["each[1]"] == ("steps", "each", "running"), records
        assert records["each[1].ship"] == ("call", "each[1]", "input_required"), records
        assert records["each[0].tell"] == ("call", "each[0]", "completed"), records
        assert records["each[2].ship"][2] == "input_required", records
        assert "each[1].tell" not in records and "each[2].tell" not in records
        # Only the run's user answers.
        assert erin.post(url, json={"text": "north"}).status_code == 404
        answered = dana.post(url, json={"text": "north", "step": "each[1].ship"})
        assert answered.status_code == 202, answered.text
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    assert done["output"] == [
        {"index": 0, "warehouse": "south", "said": "Dear Ada, your quote is 4.0 EUR."},
        {"index": 1, "warehouse": "north", "said": "Dear Bo, your quote is 2.0 EUR."},
        {"index": 2, "warehouse": "north", "said": "Dear Cy, your quote is 2.0 EUR."},
    ]
    assert _records(done)["each[1].tell"] == ("call", "each[1]", "completed")
    rid = run["id"]
    assert sorted(messages_of(setup.desk.sent("ship"), run)) == sorted(
        [f"{rid}.each[{i}].ship.1" for i in range(3)]
        + [f"{rid}.each[{i}].ship.1.answer1" for i in range(3)]
    )
    assert sorted(messages_of(setup.desk.sent("reply"), run)) == sorted(
        [f"{rid}.each[{i}].tell.1" for i in range(3)]
    )


@pytest.mark.crash
def test_an_items_sequence_waiting_at_its_question_across_a_sigkill(
    tmp_path: Path, database_url: str | None
) -> None:
    """SIGKILLed while an item's sequence waits at its question, the other
    items done: started again, the run asks the same question, takes the
    answer, runs the item's last step, and the desk got each message once."""
    orders = [
        {"sku": "A-1", "quantity": 1, "customer": "Ada"},
        {"sku": "B-2", "quantity": 2, "warehouse": "south", "customer": "Bo"},
    ]
    with crashable(tmp_path, database_url, FLOW_POLICY, EACH) as world:
        run_id = world.start("ship-then-reply", {"orders": orders})

        def asking(run: dict[str, Any]) -> bool:
            return bool(run["state"] == "input_required" and run["current_step"] == "each[0].ship")

        world.until("ship-then-reply", run_id, asking)
        world.restart()
        world.until("ship-then-reply", run_id, asking)
        with world.gateway.client("dana", "sales:quote") as dana:
            url = f"/flows/ship-then-reply/runs/{run_id}/answer"
            answered = dana.post(url, json={"text": "north", "step": "each[0].ship"})
        assert answered.status_code == 202, answered.text
        done = world.ended("ship-then-reply", run_id)
        assert done["state"] == "completed", done
        assert [o["warehouse"] for o in done["output"]] == ["north", "south"]
        assert sorted(world.sent("ship")) == sorted(
            [f"{run_id}.each[{i}].ship.1" for i in range(2)]
            + [f"{run_id}.each[{i}].ship.1.answer1" for i in range(2)]
        )
        assert sorted(world.sent("reply")) == sorted(
            [f"{run_id}.each[{i}].tell.1" for i in range(2)]
        )


def test_a_fork_after_the_fan_out_reuses_its_sequences(setup: FlowSetup) -> None:
    """Forked from the step after the parallel step, the fork takes the
    branch's steps' records and outputs as they were: nothing sent again
    but the step it starts at."""
    with setup.user() as dana:
        run = setup.run(dana, setup.start(dana, "priced", {"quantity": 10}), "completed", "failed")
        forked = dana.post(f"/flows/priced/runs/{run['id']}/fork", json={"step": "after"})
        assert forked.status_code == 201, forked.text
        fork = setup.run(dana, forked.json(), "completed", "failed")
    assert fork["state"] == "completed", fork
    assert fork["output"] == run["output"]
    rid, fid = run["id"], fork["id"]
    assert _records(fork)["confirm"] == ("call", "deal", "completed")
    assert sorted(messages_of(setup.desk.sent("quote"), run, fork)) == [f"{rid}.price.1"]
    assert sorted(messages_of(setup.desk.sent("reply"), run, fork)) == sorted(
        [f"{rid}.confirm.1", f"{rid}.after.1", f"{fid}.after.1"]
    )


def test_a_branchs_steps_in_a_loops_later_round(setup: FlowSetup) -> None:
    """A parallel step in a route's loop: round 2 records and sends the
    branch's steps as ``<id>#2``, and the route reads the latest round."""
    document = copy.deepcopy(PRICED)
    document["id"] = "priced-loop"  # a name of its own, the policy grants
    document["steps"][1] = {
        "id": "again",
        "route": [
            {"when": "steps.price.output.quantity == `10` && steps.again == `null`", "goto": "both"}
        ],
        "max": 2,
    }
    document["steps"][0]["parallel"]["branches"][1]["steps"][0]["input"] = (
        "{sku: 'A-1', quantity: `10`}"
    )
    document["output"] = "steps.both.output.deal"
    assert setup.register(document).status_code == 201, setup.register(document).text
    with setup.user() as dana:
        done = setup.run(dana, setup.start(dana, "priced-loop", {}), "completed", "failed")
    assert done["state"] == "completed", done
    records = _records(done)
    assert records.get("deal#2") == ("steps", "both#2", "completed"), sorted(records.items())
    assert records["price#2"] == ("call", "deal#2", "completed"), records
    assert records["confirm#2"] == ("call", "deal#2", "completed"), records
    rid = done["id"]
    assert sorted(messages_of(setup.desk.sent("quote"), done)) == [
        f"{rid}.price#2.1",
        f"{rid}.price.1",
    ]
    assert done["output"] == {"total": 118.75, "said": "Dear Ada, your quote is 118.75 EUR."}


def test_an_approved_run_again_goes_on_from_the_step_that_failed(
    setup: FlowSetup, request: pytest.FixtureRequest
) -> None:
    """A map of sequences with ``on_error: checkpoint``: an item's second
    step fails; approved, that item goes on from that step -- its first,
    completed, is not sent again -- and the items that completed are left."""
    document = copy.deepcopy(EACH)
    document["id"] = "priced-review"  # a name of its own, the policy grants
    document["steps"][0]["on_error"] = "checkpoint"
    document["steps"][0]["map"]["steps"][1] = {
        "id": "tell",
        "call": QUOTE,
        "input": "{sku: item.sku, quantity: `1`}",
    }
    document["steps"][0]["map"]["output"] = (
        "{warehouse: steps.ship.output.warehouse, total: steps.tell.output.total}"
    )
    assert setup.register(document).status_code == 201, setup.register(document).text
    setup.desk.failing.add("B-2")
    request.addfinalizer(setup.desk.failing.clear)  # the desk is the module's
    orders = [
        {"sku": "A-1", "quantity": 1, "warehouse": "south"},
        {"sku": "B-2", "quantity": 2, "warehouse": "north"},
    ]
    with setup.user() as dana:
        run = setup.start(dana, "priced-review", {"orders": orders})
        asked = setup.run(dana, run, "input_required", "completed", "failed")
        assert asked["state"] == "input_required", asked
        review = next(s for s in asked["steps"] if s["id"] == "each_review1")
        assert _records(asked)["each[1].tell"][2] == "failed"
        setup.desk.failing.clear()
        with setup.admin() as admin:
            decided = admin.post(
                f"/approvals/{review['approval_id']}", json={"decision": "approve"}
            )
            assert decided.status_code == 200, decided.text
        done = setup.run(dana, run, "completed", "failed")
    assert done["state"] == "completed", done
    assert done["output"] == [
        {"warehouse": "south", "total": 11.88},
        {"warehouse": "north", "total": 11.88},
    ]
    rid = run["id"]
    # Each ship once (and its answer); the failed quote again, the other not.
    assert sorted(messages_of(setup.desk.sent("ship"), run)) == sorted(
        [f"{rid}.each[{i}].ship.1" for i in range(2)]
        + [f"{rid}.each[{i}].ship.1.answer1" for i in range(2)]
    )
    assert sorted(messages_of(setup.desk.sent("quote"), run)) == sorted(
        [f"{rid}.each[0].tell.1", f"{rid}.each[1].tell.1", f"{rid}.each[1].tell.1"]
    )
