"""`map` (one call per item, bounded concurrency) and a call's `fallback`,
end to end against the real sales desk (an official-SDK A2A agent): outputs in
the items' order, each item recorded as a step of its own under the map, an
item that breaks its contract failing the map (or skipped past), and a
fallback taking over when its call's agent is down. Registration names the
step and field of a bad map or fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.flow_agents import QUOTE_CONTRACT, SalesDesk, sales_desk_app
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.servers import ServerThread

ORDERS = {
    "orders": [
        {"sku": "A-1", "quantity": 1},
        {"sku": "B-2", "quantity": 2},
        {"sku": "C-3", "quantity": 3},
    ]
}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[FlowSetup]:
    policy = POLICY + (
        "  fanout:\n    grant: [sales:quote, inventory:read]\n"
        "  backup:\n    require: [sales:quote]\n    grant: [sales:quote]\n"
    )
    with flow_setup(tmp_path, None, policy) as made:
        yield made


def flow(*steps: dict[str, Any], output: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "switchboard.flow/v1",
        "id": "fanout",
        "name": "Fan out",
        "input": {"type": "object"},
        "steps": list(steps),
    }
    if output is not None:
        document["output"] = output
    return document


def quotes(
    over: str = "input.orders", quantity: str = "item.quantity", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "quotes",
        "map": {
            "over": over,
            "concurrency": 2,
            "call": {"agent": "sales", "skill": "quote"},
            "input": f"{{sku: item.sku, quantity: {quantity}}}",
        },
        **extra,
    }


def run(setup: FlowSetup, document: dict[str, Any], run_input: dict[str, Any]) -> dict[str, Any]:
    registered = setup.register(document)
    assert registered.status_code in (200, 201), registered.text
    with setup.user() as dana:
        started = dana.post("/flows/fanout/runs", json={"input": run_input})
        assert started.status_code == 202, started.text
        return setup.run(dana, started.json(), "completed", "failed")


def steps_of(done: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in done["steps"]}


def test_a_map_calls_once_per_item_and_keeps_their_order(setup: FlowSetup) -> None:
    done = run(setup, flow(quotes(), output="steps.quotes.output[*].sku"), ORDERS)
    assert done["state"] == "completed", done
    assert done["output"] == ["A-1", "B-2", "C-3"]
    assert setup.desk.count("quote") == 3
    seen = steps_of(done)
    assert seen["quotes"]["state"] == "completed"
    for index, order in enumerate(ORDERS["orders"]):
        item = seen[f"quotes[{index}]"]
        assert item["parent"] == "quotes" and item["state"] == "completed", item
        assert item["input"]["input"] == order
    received = sorted(r["data"]["sku"] for r in setup.desk.received)
    assert received == ["A-1", "B-2", "C-3"]


def test_an_item_that_breaks_its_contract_fails_the_map(setup: FlowSetup) -> None:
    bad = {"orders": [*ORDERS["orders"][:1], {"sku": "Z-0", "quantity": 0}]}
    done = run(setup, flow(quotes()), bad)
    assert done["state"] == "failed", done
    seen = steps_of(done)
    assert seen["quotes[1]"]["state"] == "failed"
    assert "1 of 2 items failed: [1]:" in seen["quotes"]["error"]
    assert setup.desk.count("quote") == 1  # never sent: it broke the contract


def test_on_error_skip_goes_past_a_failed_map(setup: FlowSetup) -> None:
    after = {"id": "after", "call": {"agent": "sales", "skill": "quote"}}
    after["input"] = "{sku: 'LAST', quantity: `1`}"
    document = flow(quotes(quantity="`0`", on_error="skip"), after, output="steps.after.output.sku")
    done = run(setup, document, ORDERS)
    assert done["state"] == "completed", done
    assert done["output"] == "LAST"


def test_a_map_over_something_not_a_list_fails_saying_so(setup: FlowSetup) -> None:
    done = run(setup, flow(quotes(over="input.orders")), {"orders": {"sku": "A-1"}})
    assert done["state"] == "failed"
    assert "map.over must be a list; it is dict" in steps_of(done)["quotes"]["error"]


def test_a_fallback_answers_when_the_call_cannot(setup: FlowSetup) -> None:
    # "backup" is a second sales desk, registered and then taken down: the
    # step's own call fails, its fallback (the live desk) answers.
    backup_desk = SalesDesk()
    backup = ServerThread(lambda url: sales_desk_app(url, backup_desk)).start()
    with setup.admin() as admin:
        body = {
            "card_url": backup.url + "/.well-known/agent-card.json",
            "id": "backup",
            "skill_contracts": {"quote": QUOTE_CONTRACT},
        }
        assert admin.post("/agents", json=body).status_code == 201
    backup.stop()
    step = {
        "id": "priced",
        "call": {"agent": "backup", "skill": "quote"},
        "input": "{sku: input.sku, quantity: input.quantity}",
        "fallback": {"agent": "sales", "skill": "quote"},
    }
    done = run(setup, flow(step, output="steps.priced.output.sku"), {"sku": "F-1", "quantity": 2})
    assert done["state"] == "completed", done
    assert done["output"] == "F-1"
    priced = steps_of(done)["priced"]
    assert priced["target"] == "sales"  # the record names who answered
    assert setup.desk.count("quote") == 1 and backup_desk.count("quote") == 0


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        (
            quotes() | {"map": {**quotes()["map"], "input": "{sku: itm.sku, quantity: `1`}"}},
            "steps[0].map.input",
            "'itm' is not known here",
        ),
        (
            quotes() | {"map": {**quotes()["map"], "call": {"agent": "nobody"}}},
            "steps[0].map.call.agent",
            "no agent 'nobody'",
        ),
        (
            {
                "id": "priced",
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: input.sku, quantity: `1`}",
                "fallback": {"agent": "nobody"},
            },
            "steps[0].fallback.agent",
            "no agent 'nobody'",
        ),
        (
            {
                "id": "priced",
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: input.sku, quantity: `1`}",
                "fallback": {"agent": "sales", "skill": "quote"},
            },
            "steps[0].fallback",
            "the fallback is the call itself",
        ),
    ],
)
def test_a_bad_map_or_fallback_is_refused_naming_the_field(
    setup: FlowSetup, step: dict[str, Any], field: str, message: str
) -> None:
    refused = setup.register(flow(step))
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    matching = [e for e in errors if e["field"] == field]
    assert matching, errors
    assert message in matching[0]["message"], matching[0]
