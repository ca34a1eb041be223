"""Crash safety of fan-out reviews and of retry backoffs: a real gateway
process killed with SIGKILL and started again on the same data (SQLite and
PostgreSQL), the sales desk (official a2a-sdk, in this process) counting
what it receives and when.

* Killed while a run waits at a branch's review, then at a map's: the run
  waits again at the same approval; approved, it goes on; no branch or item
  that had completed is called again.
* Killed while a step with retries sleeps in its backoff: the backoff is a
  durable DBOS sleep, so the run waits only for what is left of it (not a
  fresh backoff), then makes the next attempt -- the attempts already made
  are not made again -- and completes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dbos_records import operations
from tests.support.flow_crash import CrashWorld, crashable
from tests.support.flows import POLICY
from tests.support.waiting import wait_for

# Kills gateway processes: on one database each in `make test` (`tests/conftest.py`).
pytestmark = pytest.mark.crash

# The backoff after a failed attempt: long enough to kill the gateway in it,
# start it again (DBOS takes up to ~10 s here to take the run up again), and
# still tell what is left of it from a fresh one.
BACKOFF = {"flow_retry_backoff_seconds": 15, "flow_retry_backoff_max_seconds": 15}

FLOW = "crash-flow"


@pytest.fixture
def crash(tmp_path: Path, database_url: str | None) -> Iterator[CrashWorld]:
    # Retries need an idempotent target (the registration checks it).
    policy = POLICY.replace(
        "  sales:\n    require: [sales:quote]\n",
        "  sales:\n    require: [sales:quote]\n    idempotent: true\n",
    )
    with crashable(tmp_path, database_url, policy, settings=BACKOFF) as world:
        yield world


def _flow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": "crash-flow",
        "name": "Crash while a human is asked, or while a retry waits",
        "input": {"type": "object"},
        "steps": list(steps),
    }


def _quote(step_id: str, sku: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "call": {"agent": "sales", "skill": "quote"},
        "input": f"{{sku: '{sku}', quantity: `2`}}",
        **extra,
    }


def _steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in run["steps"]}


def _waiting_at(review: str) -> Any:
    def waiting(run: dict[str, Any]) -> bool:
        found = _steps(run).get(review) or {}
        return run["state"] != "working" and found.get("state") in ("waiting", "completed")

    return waiting


def _killed_and_back(crash: CrashWorld, run_id: str, review: str) -> str:
    """Kill the gateway while the run waits at ``review``; start it again; the
    run waits at the same approval. Its id."""
    before = crash.until(FLOW, run_id, _waiting_at(review))
    assert before["state"] == "input_required", before
    approval: str = _steps(before)[review]["approval_id"]
    crash.gateway.kill()
    crash.gateway.start()
    after = crash.until(FLOW, run_id, lambda r: r["state"] != "working")
    assert after["state"] == "input_required", after
    assert _steps(after)[review]["state"] == "waiting"
    assert _steps(after)[review]["approval_id"] == approval  # the same one: not asked twice
    return approval


def _approve(crash: CrashWorld, approval: str) -> None:
    with crash.admin() as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text


def test_killed_at_a_branchs_and_a_maps_review_the_run_waits_again_and_reruns_nothing(
    crash: CrashWorld,
) -> None:
    crash.desk.failing.update({"F-1", "B-2"})
    document = _flow(
        {
            "id": "both",
            "parallel": {
                "branches": [
                    _quote("steady", "S-1"),
                    _quote("shaky", "F-1", on_error="checkpoint"),
                ]
            },
        },
        {
            "id": "quotes",
            "map": {
                "over": "input.orders",
                "concurrency": 3,
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: item, quantity: `1`}",
            },
            "on_error": "checkpoint",
        },
    )
    crash.register(document)
    run_id = crash.start(FLOW, {"orders": ["A-1", "B-2", "C-3"]})

    approval = _killed_and_back(crash, run_id, "shaky_review1")
    assert [len(crash.received(s)) for s in ("S-1", "F-1")] == [1, 1]  # nothing re-run on recovery
    crash.desk.failing.discard("F-1")
    _approve(crash, approval)

    approval = _killed_and_back(crash, run_id, "quotes_review1")
    assert [len(crash.received(s)) for s in ("S-1", "F-1", "A-1", "B-2", "C-3")] == [1, 2, 1, 1, 1]
    crash.desk.failing.clear()
    _approve(crash, approval)

    done = crash.until(FLOW, run_id, lambda r: r["state"] in ("completed", "failed", "rejected"))
    assert done["state"] == "completed", done
    # Only what had failed was called again, once each, after its approval.
    assert [len(crash.received(s)) for s in ("S-1", "F-1", "A-1", "B-2", "C-3")] == [1, 2, 1, 2, 1]
    steps = _steps(done)
    assert sorted(steps["both"]["output"]) == ["shaky", "steady"]
    assert [q["sku"] for q in steps["quotes"]["output"]] == ["A-1", "B-2", "C-3"]
    assert steps["shaky_review1"]["state"] == steps["quotes_review1"]["state"] == "completed"


def _sleeps(crash: CrashWorld, run_id: str) -> list[float]:
    """The durable sleeps DBOS recorded for the run: each one's wake-up time."""
    return [
        float(out)
        for _, name, out in operations(crash.database_url, run_id)
        if name == "DBOS.sleep"
    ]


def test_killed_in_a_retry_backoff_the_run_waits_only_what_is_left_and_goes_on(
    crash: CrashWorld,
) -> None:
    crash.desk.failing.add("R-1")  # its first attempt fails
    crash.register(_flow(_quote("priced", "R-1", retries=2)))
    run_id = crash.start(FLOW, {})

    def first_failed(run: dict[str, Any]) -> bool:
        priced = _steps(run).get("priced") or {}
        return priced.get("state") == "retrying" and priced.get("attempts") == 1

    before = crash.until(FLOW, run_id, first_failed)
    crash.desk.failing.clear()  # the second attempt will do
    assert "no price for R-1 now" in _steps(before)["priced"]["error"]
    first_at = crash.received("R-1")[0]["at"]
    # In the 15 s backoff: DBOS recorded its durable sleep (its wake-up time).
    wait_for(lambda: _sleeps(crash, run_id), what="the backoff's durable sleep")
    crash.gateway.kill()
    restarted_at = time.time()
    crash.gateway.start()
    done = crash.until(FLOW, run_id, lambda r: r["state"] in ("completed", "failed"))
    assert done["state"] == "completed", done

    calls = crash.received("R-1")
    # Two attempts in all: the one made before the crash was not made again,
    # the count went on from it.
    assert [c["message_id"].rsplit(".", 1)[1] for c in calls] == ["1", "2"]
    priced = _steps(done)["priced"]
    assert priced["attempts"] == 2 and priced["retries"] == 1 and priced["state"] == "completed"
    # One backoff, recorded once: the recovered run did not take it afresh.
    sleeps = _sleeps(crash, run_id)
    assert len(sleeps) == 1, sleeps
    woke_at = sleeps[0]
    assert woke_at == pytest.approx(first_at + 15, abs=1.5)
    # The second attempt waited for that recorded wake-up time. (That it
    # waited no longer is the single recorded sleep above: a fresh backoff
    # taken after the restart would be a second one; how soon DBOS picks the
    # run up after a restart varies with the machine's load, so no bound on
    # the time is asserted.)
    assert calls[1]["at"] >= woke_at - 0.1
    assert calls[1]["at"] > restarted_at
