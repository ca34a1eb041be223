"""Forking a run (`gateway.flows.forks`), end to end on both databases: a new
run from a chosen step of an ended one, with DBOS's own fork -- the steps
before it keep the outputs the origin recorded and are never sent again (the
sales desk, official a2a-sdk, counts every message it gets), the fork goes on
with edited input or a newer flow version, and only the run's user forks."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import POLICY, QUOTE_FLOW, FlowSetup, flow_setup, messages_of, wait_for_run
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

ORDER = {"sku": "X-100", "quantity": 3, "customer": "Ada"}
# quote-flow again, for the test that registers a version 2 of it.
FORKS_POLICY = POLICY + "  quote-versions:\n    grant: [sales:quote, inventory:read]\n"


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, quote-flow registered once:
    each test reads the desk's messages of its own runs (`messages_of`); the one that
    registers a newer version does so under a flow id of its own."""
    tmp_path = tmp_path_factory.mktemp("forks")
    with flow_setup(tmp_path, module_database_url, FORKS_POLICY) as made:
        assert made.register(QUOTE_FLOW).status_code == 201
        yield made


def _start(
    client: httpx.Client, order: dict[str, Any] = ORDER, flow: str = "quote-flow"
) -> dict[str, Any]:
    started = client.post(f"/flows/{flow}/runs", json={"input": order})
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def _fork(client: httpx.Client, run: dict[str, Any], **body: Any) -> httpx.Response:
    return client.post(f"/flows/{run['flow_id']}/runs/{run['id']}/fork", json=body)


def _steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in run["steps"]}


def test_a_fork_from_a_later_step_reuses_the_steps_before_it(setup: FlowSetup) -> None:
    """Through a parallel step and a route: the fork from ``reply`` with
    another customer sends only ``reply``; the quote it names is the one the
    origin got."""
    with setup.user() as dana:
        run = setup.run(dana, _start(dana), "completed", "failed")
        assert run["state"] == "completed", run
        assert len(messages_of(setup.desk.sent("quote"), run)) == 1
        forked = _fork(dana, run, step="reply", input={**ORDER, "customer": "Bob"})
        assert forked.status_code == 201, forked.text
        fork = forked.json()
        assert fork["id"] != run["id"]
        assert (fork["forked_from"], fork["fork_step"]) == (run["id"], "reply")
        done = setup.run(dana, fork, "completed", "failed")
    assert done["state"] == "completed", done
    assert done["output"]["reply"] == "Dear Bob, your quote is 35.62 EUR."
    assert done["output"]["quote"] == run["output"]["quote"]
    assert done["output"]["stock"] == run["output"]["stock"]
    # Nothing before the fork's step sent again; the reply sent once more.
    assert messages_of(setup.desk.sent("quote"), run, fork) == [f"{run['id']}.quote.1"]
    assert messages_of(setup.desk.sent("reply"), run, fork) == [
        f"{run['id']}.reply.1",
        f"{fork['id']}.reply.1",
    ]
    steps = _steps(done)
    for reused in ("check", "quote", "stock", "big_discount"):
        assert steps[reused]["reused_from"] == run["id"], steps[reused]
        assert steps[reused]["state"] == "completed"
        assert steps[reused]["usage"] is None
    assert steps["reply"]["reused_from"] is None
    assert steps["reply"]["state"] == "completed"
    assert steps["manager"]["state"] == "skipped"
    assert done["input"]["customer"] == "Bob"
    with setup.admin() as admin:
        audit = admin.get("/audit", params={"trace": fork["trace_id"]})
    assert audit.status_code == 200, audit.text
    said = [r["detail"] for r in audit.json()["items"] if r["event"] == "flow.fork"]
    assert said == [f"run {fork['id']} forked from run {run['id']} at step reply (version 1)"]
    # A fork of the fork, from the same step: the quote still the first run's.
    with setup.user() as dana:
        again = _fork(dana, done, step="reply", input={**ORDER, "customer": "Cy"})
        assert again.status_code == 201, again.text
        third = setup.run(dana, again.json(), "completed", "failed")
    assert third["output"]["reply"] == "Dear Cy, your quote is 35.62 EUR."
    assert messages_of(setup.desk.sent("quote"), run, fork, third) == [f"{run['id']}.quote.1"]
    assert _steps(third)["quote"]["reused_from"] == done["id"]


def test_a_failed_run_forked_at_its_failed_step_goes_on(setup: FlowSetup) -> None:
    """The quote failed; forked from the parallel step once the desk prices
    the sku again, the fork makes the calls the origin failed at, afresh."""
    setup.desk.failing.add("X-100")
    try:
        with setup.user() as dana:
            run = setup.run(dana, _start(dana), "completed", "failed")
    finally:
        setup.desk.failing.clear()  # the desk is the module's
    assert run["state"] == "failed", run
    with setup.user() as dana:
        forked = _fork(dana, run, step="check")
        assert forked.status_code == 201, forked.text
        done = setup.run(dana, forked.json(), "completed", "failed")
    assert done["state"] == "completed", done
    assert messages_of(setup.desk.sent("quote"), run, done) == [
        f"{run['id']}.quote.1",
        f"{done['id']}.quote.1",
    ]
    assert all(s["reused_from"] is None for s in done["steps"])


def test_an_approved_checkpoint_is_not_asked_again_in_a_fork(setup: FlowSetup) -> None:
    big = {**ORDER, "quantity": 100}
    with setup.user() as dana, setup.admin() as admin:
        # Approvals pending before the test: other tests' (the gateway is the module's).
        before = {
            a["id"] for a in admin.get("/approvals", params={"state": "pending"}).json()["items"]
        }
        run = setup.run(dana, _start(dana, big), "input_required")
        approval = _steps(run)["manager"]["approval_id"]
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        run = setup.run(dana, run, "completed", "failed")
        assert run["state"] == "completed", run
        forked = _fork(dana, run, step="reply", input={**big, "customer": "Cy"})
        assert forked.status_code == 201, forked.text
        done = setup.run(dana, forked.json(), "completed", "failed", "input_required")
        pending = admin.get("/approvals", params={"state": "pending"}).json()
    assert done["state"] == "completed", done
    assert _steps(done)["manager"]["reused_from"] == run["id"]
    assert _steps(done)["manager"]["output"]["approved"] is True
    assert done["output"]["reply"].startswith("Dear Cy")
    assert [a for a in pending["items"] if a["id"] not in before] == [], pending
    assert len(messages_of(setup.desk.sent("quote"), run, done)) == 1


def test_a_fork_goes_on_with_a_newer_version(setup: FlowSetup) -> None:
    older = {**QUOTE_FLOW, "id": "quote-versions"}  # a flow of its own: quote-flow is shared
    assert setup.register(older).status_code == 201
    newer = copy.deepcopy(older)
    newer["steps"][-1]["input"] = "{customer: 'Dear friend', total: steps.quote.output.total}"
    with setup.user() as dana:
        run = setup.run(dana, _start(dana, flow="quote-versions"), "completed", "failed")
        assert setup.register(newer).status_code == 201
        forked = _fork(dana, run, step="reply", version=2)
        assert forked.status_code == 201, forked.text
        done = setup.run(dana, forked.json(), "completed", "failed")
    assert done["flow_version"] == 2
    assert done["output"]["reply"].startswith("Dear Dear friend"), done
    assert len(messages_of(setup.desk.sent("quote"), run, done)) == 1


def test_who_may_fork_and_from_where(setup: FlowSetup) -> None:
    # A user of the test's own ("dana" here): it counts the user's runs.
    with setup.user("fran") as dana, setup.user("erin") as erin, setup.admin() as admin:
        run = setup.run(dana, _start(dana), "completed", "failed")
        # Another user, an admin too, finds no such run.
        for other in (erin, admin):
            refused = _fork(other, run, step="reply")
            assert refused.status_code == 404, refused.text
            assert refused.json()["type"].endswith("run-not-found")
        bad_bodies: list[dict[str, Any]] = [
            {},
            {"step": ""},
            {"step": "reply", "extra": 1},
            {"step": "reply", "input": [1]},
            {"step": "reply", "version": 0},
            {"step": "reply", "version": "two"},
            {"step": "reply", "version": 2**40},  # beyond any column: refused, not a 500
            {"step": "a b"},
            {"step": 5},
        ]
        for bad in bad_bodies:
            assert _fork(dana, run, **bad).status_code == 422, bad
        # Input the flow's schema refuses.
        assert _fork(dana, run, step="reply", input={"sku": 1}).status_code == 422
        conflicts = {
            "nope": "is not a step",
            "quote": "is not a step",  # a parallel branch, not the top level
            "manager": "route big_discount went to reply",  # a route went past it
        }
        for step, said in conflicts.items():
            refused = _fork(dana, run, step=step)
            assert refused.status_code == 409, refused.text
            assert refused.json()["type"].endswith("fork-refused")
            assert said in refused.json()["detail"], refused.json()
        assert _fork(dana, run, step="reply", version=9).status_code == 404
        missing = dana.post("/flows/quote-flow/runs/run_nope/fork", json={"step": "reply"})
        assert missing.status_code == 404
        # A run still going is not forked (it would race its fork).
        waiting = setup.run(dana, _start(dana, {**ORDER, "quantity": 100}), "input_required")
        refused = _fork(dana, waiting, step="reply")
        assert refused.status_code == 409, refused.text
        assert "input_required" in refused.json()["detail"]
        runs = dana.get("/flows/quote-flow/runs")
    # Nothing refused made a run.
    assert runs.status_code == 200, runs.text
    assert len(runs.json()) == 2, runs.json()
    assert len(messages_of(setup.desk.sent("reply"), *runs.json())) == 1


def test_the_console_forks_a_run_and_replays_it_step_by_step(setup: FlowSetup) -> None:
    with setup.user() as dana_api:
        run = setup.run(dana_api, _start(dana_api), "completed", "failed")
    page = f"/ui/flows/quote-flow/runs/{run['id']}"
    web = httpx.Client(
        base_url=setup.gateway.url, timeout=30, follow_redirects=False, verify=client_tls()
    )
    erin_web = httpx.Client(
        base_url=setup.gateway.url, timeout=30, follow_redirects=False, verify=client_tls()
    )
    with web, erin_web:
        csrf = dev_login(web, "dana", "sales:quote inventory:read")
        shown = web.get(page)
        assert shown.status_code == 200
        assert 'id="fork-form"' in shown.text and 'id="replay-link"' in shown.text
        assert '<option value="reply">reply</option>' in shown.text
        # The replay: one step at a time, what the run knew by then.
        first = web.get(page + "/replay")
        assert first.status_code == 200, first.text
        assert "step 1 of 4" in first.text and "No step had completed yet" in first.text
        last = web.get(page + "/replay", params={"at": 99})
        assert "step 4 of 4" in last.text and "Dear Ada" in last.text
        assert "steps.check.output" in last.text and 'id="replay-next"' not in last.text
        assert web.get(page + "/replay", params={"at": "x"}).status_code == 422
        # Another user: no run, no fork, no replay.
        erin_csrf = dev_login(erin_web, "erin", "sales:quote inventory:read")
        assert erin_web.get(page + "/replay").status_code == 404
        theirs = erin_web.post(page + "/fork", data={"csrf": erin_csrf, "step": "reply"})
        assert theirs.status_code == 404
        assert web.post(page + "/fork", data={"step": "reply"}).status_code == 403  # no CSRF
        for bad, said in (
            ({"step": "reply", "input": "{nope"}, "input: not JSON"),
            ({"step": "manager", "input": ""}, "route big_discount went to reply"),
            ({"step": "reply", "version": "two"}, "version"),
            ({"step": "reply", "input": '{"sku": 1}'}, "input"),
        ):
            refused = web.post(page + "/fork", data={"csrf": csrf, **bad})
            assert refused.status_code == 422, (bad, refused.status_code)
            assert 'id="fork-errors"' in refused.text and said in refused.text, bad
        order = json.dumps({**ORDER, "customer": "Dee"})
        forked = web.post(page + "/fork", data={"csrf": csrf, "step": "reply", "input": order})
        assert forked.status_code == 303, forked.text
        fork_page = forked.headers["location"]
        fork_id = fork_page.rsplit("/", 1)[1]
    with setup.user() as dana_api:
        done = setup.run(dana_api, {"flow_id": "quote-flow", "id": fork_id}, "completed", "failed")
    assert done["output"]["reply"] == "Dear Dee, your quote is 35.62 EUR."
    with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as web:
        dev_login(web, "dana", "sales:quote inventory:read")
        shown = web.get(fork_page)
        assert 'id="forked-from"' in shown.text and run["id"] in shown.text
        assert ">reused</span>" in shown.text
    assert len(messages_of(setup.desk.sent("quote"), run, done)) == 1


SLOW_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "slow-flow",
    "name": "Quote, work, reply",
    "input": {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "seconds": {"type": "number"}},
        "required": ["sku", "seconds"],
    },
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: input.sku, quantity: `2`}",
        },
        {
            "id": "work",
            "call": {"agent": "sales", "skill": "work"},
            "input": "{seconds: input.seconds}",
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'Ada', total: steps.quote.output.total}",
        },
    ],
}


@pytest.mark.crash
def test_a_fork_killed_mid_step_goes_on_without_sending_anything_twice(
    tmp_path: Path, database_url: str | None
) -> None:
    """The gateway SIGKILLed while the fork's first own step is in flight:
    started again, the fork re-attaches to that task and ends; the steps
    before it were sent once, by the origin, and never by the fork."""
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + "  slow-flow:\n    grant: [sales:quote]\n")
    gateway = GatewayProcess(tmp_path / "data", database_url=database_url, policy_file=policy)

    def until(run_id: str, *states: str) -> dict[str, Any]:
        with gateway.client("dana", "sales:quote") as dana:
            return wait_for_run(dana, {"flow_id": "slow-flow", "id": run_id}, *states, seconds=60)

    def working() -> int:
        with desk.lock:
            return sum(1 for r in desk.received if r["skill"] == "work")

    try:
        gateway.start()
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            card = sales.url + "/.well-known/agent-card.json"
            assert admin.post("/agents", json={"card_url": card, "id": "sales"}).status_code == 201
            assert admin.post("/flows", json=SLOW_FLOW).status_code == 201
        with gateway.client("dana", "sales:quote") as dana:
            started = dana.post("/flows/slow-flow/runs", json={"input": {"sku": "X", "seconds": 0}})
            origin = started.json()["id"]
        assert until(origin, "completed", "failed")["state"] == "completed"
        with gateway.client("dana", "sales:quote") as dana:
            forked = dana.post(
                f"/flows/slow-flow/runs/{origin}/fork",
                json={"step": "work", "input": {"sku": "X", "seconds": 4}},
            )
            assert forked.status_code == 201, forked.text
            fork = forked.json()["id"]

        def work_sent() -> dict[str, Any] | None:
            with gateway.client("dana", "sales:quote") as dana:
                seen = dana.get(f"/flows/slow-flow/runs/{fork}").json()
            work: dict[str, Any] = next((s for s in seen["steps"] if s["id"] == "work"), {})
            return work if work.get("upstream_task_id") else None

        # Until the fork's work step has its task (re-attached after).
        wait_for(work_sent, seconds=15, what="the fork's work step sent")
        assert working() == 2
        gateway.kill()
        gateway.start()
        done = until(fork, "completed", "failed")
        assert done["state"] == "completed", done["error"]
    finally:
        gateway.stop()
        sales.stop()
    with desk.lock:
        sent = [r["message_id"] for r in desk.received]
    assert sent == [
        f"{origin}.quote.1",
        f"{origin}.work.1",
        f"{origin}.reply.1",
        f"{fork}.work.1",
        f"{fork}.reply.1",
    ]
