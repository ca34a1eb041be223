"""Crash safety: a real gateway process killed with SIGKILL in the middle of a
flow's step, and started again on the same data (SQLite and PostgreSQL).

The run goes on from the step it was at; the steps it had completed are not
run again; the step in flight re-attaches to the agent's task instead of
sending the message again -- the agent (official a2a-sdk, in this process)
counts what it receives. A step whose message may have been sent but whose
task id was never recorded is not sent again to a target that is not
idempotent: it fails saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gateway.flows.engine import system_database_url
from tests.support.flow_crash import CrashWorld, crashable
from tests.support.flows import POLICY

# Kills gateway processes: on one database each in `make test` (`tests/conftest.py`).
pytestmark = pytest.mark.crash

CRASH_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "crash-flow",
    "name": "Quote, work a while, reply",
    "input": {"type": "object", "properties": {"quantity": {"type": "integer"}}},
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'X-100', quantity: input.quantity}",
        },
        {
            "id": "work",
            "call": {"agent": "sales", "skill": "work"},
            "input": "{seconds: `3`}",
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'ACME', total: steps.quote.output.total}",
        },
    ],
}

FLOW = "crash-flow"


@pytest.fixture
def crash(tmp_path: Path, database_url: str | None) -> Iterator[CrashWorld]:
    with crashable(tmp_path, database_url, POLICY, CRASH_FLOW) as world:
        yield world


def _step(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in run["steps"] if s["id"] == step_id)
    return found


def _received(crash: CrashWorld) -> str:
    """What the desk received (each message's id says its run, step and
    attempt) and the gateway's log: what a count that differs is read with."""
    with crash.desk.lock:
        seen = [(r["skill"], r["message_id"], r["at"]) for r in crash.desk.received]
    return f"received {seen}; the gateway's log ends:\n{crash.gateway.log_tail(60)}"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _in_flight(run: dict[str, Any]) -> bool:
    steps = {s["id"]: s for s in run["steps"]}
    return "work" in steps and bool(steps["work"]["upstream_task_id"])


def _start(crash: CrashWorld) -> str:
    with crash.user() as dana:
        started = dana.post("/flows/crash-flow/runs", json={"input": {"quantity": 10}})
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    return run_id


def test_a_killed_gateway_resumes_the_run_where_it_was_and_sends_nothing_twice(
    crash: CrashWorld,
) -> None:
    run_id = _start(crash)
    before = crash.until(FLOW, run_id, _in_flight)
    upstream_task = _step(before, "work")["upstream_task_id"]
    sent = _step(before, "work")["token"]["jti"]
    assert _step(before, "quote")["state"] == "completed"
    crash.gateway.kill()
    assert crash.desk.count("work") == 1
    crash.gateway.start()
    after = crash.until(FLOW, run_id, lambda r: r["state"] in ("completed", "failed"))
    assert after["state"] == "completed", after
    # The send in flight at the kill is in the audit, by its token's jti,
    # at the time it was sent; then the re-attached call's own record.
    records = crash.audit(after["trace_id"])
    interrupted = [r for r in records if r["outcome"] == "interrupted"]
    assert len(interrupted) == 1, records
    assert interrupted[0]["token_id"] == sent
    assert interrupted[0]["decision"] == "allow" and interrupted[0]["target"] == "sales"
    assert interrupted[0]["detail"] == f"re-attached to task {upstream_task}"
    assert interrupted[0]["subject"] == "dana" and interrupted[0]["action"] == "work"
    assert _at(interrupted[0]["at"]) < _at(_step(after, "work")["finished_at"])
    assert interrupted[0]["event"] == "flow.step"
    # Nothing sent twice: one quote, one work (re-attached), one reply.
    counts = [crash.desk.count(s) for s in ("quote", "work", "reply")]
    assert counts == [1, 1, 1], _received(crash)
    work = _step(after, "work")
    assert work["upstream_task_id"] == upstream_task
    assert work["attempts"] == 1 and work["retries"] == 0
    assert work["output"] == {"worked": 3.0}
    assert _step(after, "quote")["attempts"] == 1
    assert "Dear ACME" in after["output"]


def test_a_step_sent_without_a_task_id_known_is_not_sent_again(crash: CrashWorld) -> None:
    run_id = _start(crash)
    sent = _step(crash.until(FLOW, run_id, _in_flight), "work")["token"]["jti"]
    crash.gateway.kill()
    # As if the gateway had died between sending and hearing the task's id.
    engine = create_engine(system_database_url(crash.database_url))
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE flow_steps SET upstream_task_id = NULL WHERE run_id = :r AND step_id = 'work'"
            ),
            {"r": run_id},
        )
    engine.dispose()
    crash.gateway.start()
    after = crash.until(FLOW, run_id, lambda r: r["state"] in ("completed", "failed"))
    assert after["state"] == "failed", after
    work = _step(after, "work")
    assert work["state"] == "failed"
    assert "outcome is unknown" in work["error"] and "not sent again" in work["error"]
    counts = [crash.desk.count(s) for s in ("quote", "work", "reply")]
    assert counts == [1, 1, 0], _received(crash)
    [interrupted] = [r for r in crash.audit(after["trace_id"]) if r["outcome"] == "interrupted"]
    assert interrupted["token_id"] == sent
    assert interrupted["detail"] == "not sent again: its outcome is unknown"


MAP_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "crash-flow",
    "name": "Work through a list, two at a time",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "work",
            "map": {
                "over": "input.jobs",
                "concurrency": 2,
                "call": {"agent": "sales", "skill": "work"},
                "input": "{seconds: item}",
            },
        }
    ],
}


def test_a_killed_gateway_resumes_a_map_calling_only_the_items_not_done(crash: CrashWorld) -> None:
    with crash.admin() as admin:
        assert admin.post("/flows", json=MAP_FLOW).status_code in (200, 201)
    with crash.user() as dana:
        started = dana.post("/flows/crash-flow/runs", json={"input": {"jobs": [0.2, 0.2, 3, 3]}})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def two_done_one_in_flight(run: dict[str, Any]) -> bool:
        steps = {s["id"]: s for s in run["steps"]}
        done = all(steps.get(f"work[{i}]", {}).get("state") == "completed" for i in (0, 1))
        sent = [steps.get(f"work[{i}]", {}).get("upstream_task_id") for i in (2, 3)]
        return done and all(sent)

    before = crash.until(FLOW, run_id, two_done_one_in_flight)
    in_flight = _step(before, "work[2]")["upstream_task_id"]
    crash.gateway.kill()
    crash.gateway.start()
    after = crash.until(FLOW, run_id, lambda r: r["state"] in ("completed", "failed"))
    assert after["state"] == "completed", after
    # Four items, four messages: the two done were not called again, the two
    # in flight were re-attached to.
    assert crash.desk.count("work") == 4
    assert _step(after, "work[2]")["upstream_task_id"] == in_flight
    assert [_step(after, f"work[{i}]")["attempts"] for i in range(4)] == [1, 1, 1, 1]
    assert _step(after, "work")["output"] == [{"worked": s} for s in (0.2, 0.2, 3.0, 3.0)]


PARALLEL_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "crash-flow",
    "name": "Two long jobs side by side, a manager, a reply",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "both",
            "parallel": {
                "branches": [
                    {
                        "id": "left",
                        "call": {"agent": "sales", "skill": "work"},
                        "input": "{seconds: `3`}",
                    },
                    {
                        "id": "right",
                        "call": {"agent": "sales", "skill": "work"},
                        "input": "{seconds: `3`}",
                    },
                ]
            },
        },
        {"id": "manager", "checkpoint": {"prompt": "Go on?", "timeout_seconds": 600}},
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'ACME', total: `1`}",
        },
    ],
}


def test_a_killed_gateway_resumes_mid_parallel_and_at_a_checkpoint(crash: CrashWorld) -> None:
    with crash.admin() as admin:
        assert admin.post("/flows", json=PARALLEL_FLOW).status_code in (200, 201)
    with crash.user() as dana:
        started = dana.post("/flows/crash-flow/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def both_in_flight(run: dict[str, Any]) -> bool:
        steps = {s["id"]: s for s in run["steps"]}
        return all(steps.get(b, {}).get("upstream_task_id") for b in ("left", "right"))

    before = crash.until(FLOW, run_id, both_in_flight)
    tasks = {b: _step(before, b)["upstream_task_id"] for b in ("left", "right")}
    crash.gateway.kill()  # mid-parallel: both branches in flight
    crash.gateway.start()
    waiting = crash.until(FLOW, run_id, lambda r: r["state"] in ("input_required", "failed"))
    assert waiting["state"] == "input_required", waiting
    assert {b: _step(waiting, b)["upstream_task_id"] for b in ("left", "right")} == tasks
    # Recovery moved no step back: the parallel step started before its branches.
    both = _step(waiting, "both")
    assert _at(both["started_at"]) <= min(
        _at(_step(before, b)["started_at"]) for b in ("left", "right")
    )
    assert both["state"] == "completed"
    approval = _step(waiting, "manager")["approval_id"]
    crash.gateway.kill()  # at the checkpoint
    crash.gateway.start()
    with crash.admin() as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    after = crash.until(FLOW, run_id, lambda r: r["state"] in ("completed", "failed"))
    assert after["state"] == "completed", after
    assert _step(after, "manager")["approval_id"] == approval  # the same one, not asked twice
    # The replay after the second kill rewrote nothing the run had finished.
    kept = ("started_at", "finished_at", "state")
    for step_id in ("both", "left", "right"):
        assert {k: _step(after, step_id)[k] for k in kept} == {
            k: _step(waiting, step_id)[k] for k in kept
        }, step_id
    # Two jobs sent, re-attached to after the crash; one reply.
    assert [crash.desk.count(s) for s in ("work", "reply")] == [2, 1]
