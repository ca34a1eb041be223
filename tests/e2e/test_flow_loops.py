"""`repeat` (`gateway.flows.loops`), end to end on both databases: a block of
steps run round after round until its ``until`` holds, at most ``max``
rounds -- the sales desk (official a2a-sdk) says an order is ready from the
third time it is asked, and counts every message it gets; each round is a
call of its own, never the round before's sent again, across a SIGKILL too."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.flow_crash import crashable
from tests.support.flows import POLICY, FlowSetup, flow_setup, messages_of

POLL_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "poll-flow",
    "name": "Wait until the order is ready, then reply",
    "input": {
        "type": "object",
        "properties": {"order": {"type": "string"}, "seconds": {"type": "number"}},
        "required": ["order"],
    },
    "steps": [
        {
            "id": "poll",
            "repeat": {
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
                ],
                "until": "steps.status.output.ready",
                "max": 5,
            },
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: input.order, total: steps.status.output.asks}",
        },
    ],
    "output": "{poll: steps.poll.output, status: steps.status.output, reply: steps.reply.text}",
}
FLOW_POLICY = POLICY + "".join(
    f"  {flow}:\n    grant: [sales:quote]\n" for flow in ("poll-flow", "poll-short", "poll-on")
)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests: each starts runs of its own
    (orders of its own) and reads the desk's messages of its runs (`messages_of`).
    POLL_FLOW is registered here, once; a variant goes under an id of its own."""
    with flow_setup(tmp_path_factory.mktemp("loops"), module_database_url, FLOW_POLICY) as made:
        assert made.register(POLL_FLOW).status_code == 201
        yield made


def _start(client: httpx.Client, order: str, flow: str = "poll-flow") -> dict[str, Any]:
    started = client.post(f"/flows/{flow}/runs", json={"input": {"order": order}})
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def test_a_block_runs_until_its_condition_holds(setup: FlowSetup) -> None:
    with setup.user() as dana:
        run = setup.run(dana, _start(dana, "A-1"), "completed", "failed")
    assert run["state"] == "completed", run
    assert run["output"]["poll"] == {"rounds": 3, "done": True}
    # The latest round's output is steps.status.
    assert run["output"]["status"] == {"order": "A-1", "asks": 3, "ready": True}
    assert run["output"]["reply"] == "Dear A-1, your quote is 3.0 EUR."
    # Each round a call of its own, recorded as <id>#<round>.
    rid = run["id"]
    assert messages_of(setup.desk.sent("status"), run) == [
        f"{rid}.status#1.1",
        f"{rid}.status#2.1",
        f"{rid}.status#3.1",
    ]
    steps = {s["id"]: s for s in run["steps"]}
    assert [steps[f"status#{n}"]["output"]["asks"] for n in (1, 2, 3)] == [1, 2, 3]
    assert steps["pause#1"]["state"] == "skipped"  # no seconds given: its when did not hold
    assert steps["poll"]["kind"] == "repeat" and steps["poll"]["state"] == "completed"
    assert steps["poll"]["output"] == {"rounds": 3, "done": True}


def test_max_rounds_fail_the_run_or_go_on(setup: FlowSetup) -> None:
    short = copy.deepcopy(POLL_FLOW)
    short["id"] = "poll-short"
    short["steps"][0]["repeat"]["max"] = 2
    assert setup.register(short).status_code == 201
    going_on = copy.deepcopy(short)
    going_on["id"] = "poll-on"
    going_on["steps"][0]["repeat"]["on_max"] = "continue"
    assert setup.register(going_on).status_code == 201
    with setup.user() as dana:
        failed = setup.run(dana, _start(dana, "B-1", "poll-short"), "completed", "failed")
        went_on = setup.run(dana, _start(dana, "B-2", "poll-on"), "completed", "failed")
    assert failed["state"] == "failed", failed
    assert "until did not hold after 2 round(s)" in failed["error"]
    assert messages_of(setup.desk.sent("reply"), failed, went_on) == [f"{went_on['id']}.reply.1"]
    assert went_on["state"] == "completed", went_on
    assert went_on["output"]["poll"] == {"rounds": 2, "done": False}
    assert went_on["output"]["status"]["ready"] is False


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        (
            lambda r: r.update(until="steps.reply.output.ok"),
            "steps[0].repeat.until",
            "has not run yet",
        ),
        (
            lambda r: r["steps"][0].update(input="{order: steps.pause.output.worked}"),
            "steps[0].repeat.steps[0].input",
            "has not run yet",
        ),
        (
            lambda r: r["steps"][0].update(input="{order: steps.poll.output}"),
            "steps[0].repeat.steps[0].input",
            "has not run yet",
        ),
    ],
)
def test_what_a_repeat_may_read(setup: FlowSetup, change: Any, field: str, said: str) -> None:
    document = copy.deepcopy(POLL_FLOW)
    change(document["steps"][0]["repeat"])
    refused = setup.register(document)
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert any(e["field"] == field and said in e["message"] for e in errors), errors


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.pop("max"),
        lambda r: r.update(max=0),
        lambda r: r.update(max=51),
        lambda r: r.update(steps=[]),
        lambda r: r.update(until=""),
        lambda r: r["steps"].append({"id": "again", "repeat": copy.deepcopy(r)}),
        lambda r: r["steps"].append({"id": "out", "route": [{"goto": "reply"}]}),
        lambda r: r["steps"][0].update(id="s" * 49),
        lambda r: r.update(extra=1),
    ],
)
def test_a_repeat_the_schema_refuses(setup: FlowSetup, change: Any) -> None:
    document = copy.deepcopy(POLL_FLOW)
    change(document["steps"][0]["repeat"])
    assert setup.register(document).status_code == 422


def test_a_route_does_not_go_into_a_block(setup: FlowSetup) -> None:
    document = copy.deepcopy(POLL_FLOW)
    document["steps"].insert(0, {"id": "go", "route": [{"goto": "status"}]})
    refused = setup.register(document)
    assert refused.status_code == 422, refused.text
    assert "no step 'status' to go to" in refused.text


def test_a_fork_after_the_loop_reuses_its_rounds(setup: FlowSetup) -> None:
    with setup.user() as dana:
        run = setup.run(dana, _start(dana, "C-1"), "completed", "failed")
        after = dana.post(f"/flows/poll-flow/runs/{run['id']}/fork", json={"step": "reply"})
        assert after.status_code == 201, after.text
        forked = setup.run(dana, after.json(), "completed", "failed")
        again = dana.post(f"/flows/poll-flow/runs/{run['id']}/fork", json={"step": "poll"})
        assert again.status_code == 201, again.text
        polled = setup.run(dana, again.json(), "completed", "failed")
        inner = dana.post(f"/flows/poll-flow/runs/{run['id']}/fork", json={"step": "status"})
    assert forked["state"] == "completed", forked
    assert forked["output"]["poll"] == {"rounds": 3, "done": True}
    reused = {s["id"] for s in forked["steps"] if s["reused_from"] == run["id"]}
    assert reused == {"poll", "status#1", "status#2", "status#3", "pause#1", "pause#2", "pause#3"}
    # From the loop: polled again, once (the desk has the order ready by now).
    assert polled["output"]["poll"] == {"rounds": 1, "done": True}
    assert messages_of(setup.desk.sent("status"), run, forked, polled) == [
        f"{run['id']}.status#1.1",
        f"{run['id']}.status#2.1",
        f"{run['id']}.status#3.1",
        f"{polled['id']}.status#1.1",
    ]
    assert inner.status_code == 409  # a step of the block, not of the flow's top level


@pytest.mark.crash
def test_a_loop_killed_mid_round_goes_on_in_that_round(
    tmp_path: Path, database_url: str | None
) -> None:
    """The gateway SIGKILLed while round 2's pause is in flight: started
    again, the run re-attaches to that task and goes on to round 3; the desk
    got each message once."""
    with crashable(tmp_path, database_url, FLOW_POLICY, POLL_FLOW) as world:
        run_id = world.start("poll-flow", {"order": "K-1", "seconds": 3})

        def paused(run: dict[str, Any]) -> bool:  # round 2's pause has its task
            return any(s["id"] == "pause#2" and s["upstream_task_id"] for s in run["steps"])

        world.until("poll-flow", run_id, paused)
        assert len(world.sent("work")) == 2
        world.restart()
        done = world.ended("poll-flow", run_id)
        assert done["state"] == "completed", done
        assert done["output"]["poll"] == {"rounds": 3, "done": True}
        assert world.sent() == [
            f"{run_id}.status#1.1",
            f"{run_id}.pause#1.1",
            f"{run_id}.status#2.1",
            f"{run_id}.pause#2.1",
            f"{run_id}.status#3.1",
            f"{run_id}.reply.1",
        ]
