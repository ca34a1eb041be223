"""Routes that go back (`gateway.flows.back_routes`), end to end on both
databases: the sales desk (official a2a-sdk) says an order is ready from the
third time it is asked, and counts every message it gets; a route goes back
to ask again, at most ``max`` rounds. Each round's call is a call of its own,
never the round before's sent again -- across a SIGKILL too -- and a fork
starts at the loop's first step or after it, never inside it."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flow_crash import crashable
from tests.support.flows import POLICY, FlowSetup, flow_setup, messages_of

ASK_AGAIN: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ask-again",
    "name": "Ask until the order is ready, then reply",
    "input": {
        "type": "object",
        "properties": {"order": {"type": "string"}, "seconds": {"type": "number"}},
        "required": ["order"],
    },
    "steps": [
        {
            "id": "status",
            "call": {"agent": "sales", "skill": "status"},
            "input": "{order: input.order}",
        },
        {
            "id": "pause",
            "when": "input.seconds != `null` && !(steps.status.output.ready)",
            "call": {"agent": "sales", "skill": "work"},
            "input": "{seconds: input.seconds}",
        },
        {
            "id": "again",
            "route": [{"when": "!(steps.status.output.ready)", "goto": "status"}],
            "max": 5,
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: input.order, total: steps.status.output.asks}",
        },
    ],
    "output": "{status: steps.status.output, again: steps.again.output, reply: steps.reply.text}",
}
FLOW_POLICY = POLICY + "".join(
    f"  {flow}:\n    grant: [sales:quote]\n"
    for flow in ("ask-again", "ask-on", "ask-short", "ask-both", "ask-versions")
)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests: each starts runs of its own
    (orders of its own) and reads the desk's messages of its runs (`messages_of`).
    ASK_AGAIN is registered here, once; other documents go under ids of their own."""
    tmp_path = tmp_path_factory.mktemp("back-routes")
    with flow_setup(tmp_path, module_database_url, FLOW_POLICY) as made:
        assert made.register(ASK_AGAIN).status_code == 201
        yield made


def _start(client: httpx.Client, order: str, flow: str = "ask-again") -> dict[str, Any]:
    started = client.post(f"/flows/{flow}/runs", json={"input": {"order": order}})
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def test_a_route_goes_back_until_the_order_is_ready(setup: FlowSetup) -> None:
    with setup.user() as dana:
        run = setup.run(dana, _start(dana, "A-1"), "completed", "failed")
    assert run["state"] == "completed", run
    assert run["output"]["status"] == {"order": "A-1", "asks": 3, "ready": True}
    assert run["output"]["again"] == {"goto": "", "round": 3}
    assert run["output"]["reply"] == "Dear A-1, your quote is 3.0 EUR."
    # Round 1 under the step's own id, each later one as <id>#<round>: a call
    # of its own each time, never the round before's found again.
    rid = run["id"]
    assert messages_of(setup.desk.sent("status"), run) == [
        f"{rid}.status.1",
        f"{rid}.status#2.1",
        f"{rid}.status#3.1",
    ]
    assert messages_of(setup.desk.sent("reply"), run) == [f"{rid}.reply.1"]
    steps = {s["id"]: s for s in run["steps"]}
    assert [steps[i]["output"]["asks"] for i in ("status", "status#2", "status#3")] == [1, 2, 3]
    assert [steps[i]["output"] for i in ("again", "again#2")] == [
        {"goto": "status", "round": 1},
        {"goto": "status", "round": 2},
    ]
    assert steps["pause#2"]["state"] == "skipped"  # no seconds given: its when did not hold
    assert "status#4" not in steps and "reply#2" not in steps
    # The console draws the loop, with the rounds it ran, and each step's latest round.
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as web:
        dev_login(web, "dana", "sales:quote")
        page = web.get(f"/ui/flows/ask-again/runs/{rid}")
    assert page.status_code == 200, page.text
    assert "loop of route again, 3 round(s)" in page.text
    assert 'class="graph-node node-completed" id="node-status"' in page.text


def test_a_parallel_step_in_a_loop_reads_alike_every_round(setup: FlowSetup) -> None:
    """Each round's branches are recorded as ``<branch>#<round>``; the step's
    output and ``steps.<branch>`` read as the flow names them."""
    document: dict[str, Any] = {
        "format": "switchboard.flow/v1",
        "id": "ask-both",
        "name": "Quote and ask at once, until ready",
        "input": {"type": "object", "properties": {"order": {"type": "string"}}},
        "steps": [
            {
                "id": "both",
                "parallel": {
                    "branches": [
                        {
                            "id": "price",
                            "call": {"agent": "sales", "skill": "quote"},
                            "input": "{sku: 'X-100', quantity: `1`}",
                        },
                        {
                            "id": "ask",
                            "call": {"agent": "sales", "skill": "status"},
                            "input": "{order: input.order}",
                        },
                    ]
                },
            },
            {
                "id": "again",
                "route": [{"when": "!(steps.both.output.ask.ready)", "goto": "both"}],
                "max": 4,
            },
        ],
        "output": "{both: steps.both.output, ask: steps.ask.output, price: steps.price.output}",
    }
    assert setup.register(document).status_code == 201
    with setup.user() as dana:
        run = setup.run(dana, _start(dana, "E-1", "ask-both"), "completed", "failed")
    assert run["state"] == "completed", run
    assert set(run["output"]["both"]) == {"price", "ask"}
    assert run["output"]["both"]["ask"] == run["output"]["ask"]
    assert run["output"]["ask"] == {"order": "E-1", "asks": 3, "ready": True}
    assert run["output"]["price"]["sku"] == "X-100"
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["ask#3"]["parent"] == "both#3" and steps["price#2"]["parent"] == "both#2"
    assert set(steps["both#2"]["output"]) == {"price", "ask"}


def test_max_rounds_fail_the_run_or_go_on(setup: FlowSetup) -> None:
    short = copy.deepcopy(ASK_AGAIN)
    short["id"] = "ask-short"
    short["steps"][2]["max"] = 2
    assert setup.register(short).status_code == 201
    going_on = copy.deepcopy(short)
    going_on["id"] = "ask-on"
    going_on["steps"][2]["on_max"] = "continue"
    assert setup.register(going_on).status_code == 201
    with setup.user() as dana:
        failed = setup.run(dana, _start(dana, "B-1", "ask-short"), "completed", "failed")
        went_on = setup.run(dana, _start(dana, "B-2", "ask-on"), "completed", "failed")
    assert failed["state"] == "failed", failed
    assert "route again would go back to status after 2 round(s)" in failed["error"]
    ended = {s["id"]: s for s in failed["steps"]}
    assert ended["again#2"]["state"] == "failed"
    assert messages_of(setup.desk.sent("status"), failed, went_on) == [
        f"{failed['id']}.status.1",
        f"{failed['id']}.status#2.1",
        f"{went_on['id']}.status.1",
        f"{went_on['id']}.status#2.1",
    ]
    assert went_on["state"] == "completed", went_on
    assert went_on["output"]["status"]["ready"] is False
    assert went_on["output"]["again"] == {"goto": None, "round": 2}
    assert messages_of(setup.desk.sent("reply"), failed, went_on) == [f"{went_on['id']}.reply.1"]


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        (lambda d: d["steps"][2].pop("max"), "steps[2].max", "needs max"),
        (
            lambda d: d["steps"][2]["route"][0].update(goto="again"),
            "steps[2].route[0].goto",
            "does not go to itself",
        ),
        (
            lambda d: d["steps"].insert(1, {"id": "hold", "wait": {"event": "go"}}),
            "steps[1]",
            "a wait cannot be in the loop",
        ),
        (
            lambda d: d["steps"][1].update(input="{seconds: steps.reply.output}"),
            "steps[1].input",
            "has not run yet",
        ),
    ],
)
def test_what_a_route_that_goes_back_may_be(
    setup: FlowSetup, change: Any, field: str, said: str
) -> None:
    document = copy.deepcopy(ASK_AGAIN)
    change(document)
    refused = setup.register(document)
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert any(e["field"] == field and said in e["message"] for e in errors), errors


@pytest.mark.parametrize("bad", [0, 51, "many", None])
def test_a_max_the_schema_refuses(setup: FlowSetup, bad: Any) -> None:
    document = copy.deepcopy(ASK_AGAIN)
    document["steps"][2]["max"] = bad
    refused = setup.register(document)
    assert refused.status_code == 422, refused.text


def test_a_fork_starts_at_the_loops_first_step_or_after_the_route(setup: FlowSetup) -> None:
    with setup.user() as dana:
        run = setup.run(dana, _start(dana, "C-1"), "completed", "failed")
        after = dana.post(f"/flows/ask-again/runs/{run['id']}/fork", json={"step": "reply"})
        assert after.status_code == 201, after.text
        replied = setup.run(dana, after.json(), "completed", "failed")
        again = dana.post(f"/flows/ask-again/runs/{run['id']}/fork", json={"step": "status"})
        assert again.status_code == 201, again.text
        asked = setup.run(dana, again.json(), "completed", "failed")
        inside = [
            dana.post(f"/flows/ask-again/runs/{run['id']}/fork", json={"step": step})
            for step in ("pause", "again")
        ]
    assert replied["state"] == "completed", replied
    reused = {s["id"] for s in replied["steps"] if s["reused_from"] == run["id"]}
    assert reused == {
        "status",
        "status#2",
        "status#3",
        "pause",
        "pause#2",
        "pause#3",
        "again",
        "again#2",
        "again#3",
    }
    assert replied["output"]["status"]["asks"] == 3
    # From the loop's first step: asked again, once (ready by now), nothing reused.
    assert asked["state"] == "completed", asked
    assert asked["output"]["status"]["asks"] == 4
    assert not [s for s in asked["steps"] if s["reused_from"]]
    assert messages_of(setup.desk.sent("status"), run, replied, asked) == [
        f"{run['id']}.status.1",
        f"{run['id']}.status#2.1",
        f"{run['id']}.status#3.1",
        f"{asked['id']}.status.1",
    ]
    assert messages_of(setup.desk.sent("reply"), run, replied, asked) == [
        f"{run['id']}.reply.1",
        f"{replied['id']}.reply.1",
        f"{asked['id']}.reply.1",
    ]
    for refused in inside:
        assert refused.status_code == 409, refused.text
        assert "inside the loop of route again" in refused.text
    # The console's fork form offers the steps a fork may start from only.
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as web:
        dev_login(web, "dana", "sales:quote")
        page = web.get(f"/ui/flows/ask-again/runs/{run['id']}")
    assert page.status_code == 200, page.text
    offered = re.findall(r'<option value="([^"]+)">\1</option>', page.text)
    assert offered == ["status", "reply"], offered


def test_a_fork_into_a_version_with_a_loop_counts_the_rounds_it_reuses(
    setup: FlowSetup,
) -> None:
    """Version 1 asks once; version 2 adds the route back. A fork of a
    version-1 run from ``pause`` under version 2 reuses ``status`` and, going
    back, asks anew as ``status#2`` -- never taking the reused record for a
    call in flight."""
    looping = {**ASK_AGAIN, "id": "ask-versions"}  # a flow of the test's own
    once = copy.deepcopy(looping)
    once["steps"] = [s for s in once["steps"] if s["id"] != "again"]
    once["output"] = "{status: steps.status.output, reply: steps.reply.text}"
    assert setup.register(once).status_code == 201
    with setup.user() as dana:
        run = setup.run(dana, _start(dana, "D-1", "ask-versions"), "completed", "failed")
        assert run["output"]["status"]["asks"] == 1
        with setup.admin() as admin:
            assert admin.post("/flows", json=looping).status_code == 201
        fork = dana.post(
            f"/flows/ask-versions/runs/{run['id']}/fork", json={"step": "pause", "version": 2}
        )
        assert fork.status_code == 201, fork.text
        forked = setup.run(dana, fork.json(), "completed", "failed")
    assert forked["state"] == "completed", forked
    assert forked["output"]["status"] == {"order": "D-1", "asks": 3, "ready": True}
    assert messages_of(setup.desk.sent("status"), run, forked) == [
        f"{run['id']}.status.1",
        f"{forked['id']}.status#2.1",
        f"{forked['id']}.status#3.1",
    ]
    steps = {s["id"]: s for s in forked["steps"]}
    assert steps["status"]["reused_from"] == run["id"]
    assert steps["status#2"]["reused_from"] is None
    # Round 2 asked the desk anew: ready on the third ask, the loop ended in round 3.
    rounds = [f"{step}{at}" for at in ("", "#2", "#3") for step in ("status", "pause", "again")]
    assert sorted(steps) == sorted([*rounds, "reply"])
    assert steps["again#3"]["output"] == {"goto": "", "round": 3}


@pytest.mark.crash
def test_a_loop_killed_mid_round_goes_on_in_that_round(
    tmp_path: Path, database_url: str | None
) -> None:
    """The gateway SIGKILLed while round 2's pause is in flight: started
    again, the run re-attaches to that task and goes on to round 3; the desk
    got each message once."""
    with crashable(tmp_path, database_url, FLOW_POLICY, ASK_AGAIN) as world:
        run_id = world.start("ask-again", {"order": "K-1", "seconds": 3})

        def paused(run: dict[str, Any]) -> bool:  # round 2's pause has its task
            return any(s["id"] == "pause#2" and s["upstream_task_id"] for s in run["steps"])

        world.until("ask-again", run_id, paused)
        assert len(world.sent("work")) == 2
        world.restart()
        done = world.ended("ask-again", run_id)
        assert done["state"] == "completed", done
        assert done["output"]["status"]["asks"] == 3
        assert world.sent() == [
            f"{run_id}.status.1",
            f"{run_id}.pause.1",
            f"{run_id}.status#2.1",
            f"{run_id}.pause#2.1",
            f"{run_id}.status#3.1",
            f"{run_id}.reply.1",
        ]
