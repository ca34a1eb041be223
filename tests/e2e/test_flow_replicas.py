"""Flows on several replicas (PostgreSQL): each replica runs its own runs, and
the runs of a replica that dies are taken over by a live one, from the step
they were at, with nothing sent twice.

Two real gateway processes on one database. A run started on replica A is a
DBOS workflow owned by A (its executor id is A's replica id); A is killed
with SIGKILL while a step is in flight and not started again -- as a pod
that is gone -- and replica B, seeing A's registration go stale, takes the
run over: it re-attaches to the agent's task (the agent counts what it
receives) and completes the run. A run on a replica that stays alive is
never taken from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from gateway.flows.engine import system_database_url
from policies.scopes import ADMIN_SCOPE
from tests.e2e.test_flow_crash import CRASH_FLOW
from tests.support.flows import POLICY
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres

# Short beats, so a replica gone is noticed in seconds rather than the default 45.
FAST = {"replica_heartbeat_seconds": 0.5, "replica_stale_seconds": 2.0}


@dataclass
class Pair:
    a: GatewayProcess
    b: GatewayProcess
    desk: SalesDesk
    database_url: str

    def run(
        self, gateway: GatewayProcess, run_id: str, done: Any, seconds: float = 60
    ) -> dict[str, Any]:

        def finished() -> dict[str, Any] | None:
            with gateway.client("admin", ADMIN_SCOPE) as admin:
                body: dict[str, Any] = admin.get(f"/flows/crash-flow/runs/{run_id}").json()
            return body if done(body) else None

        return wait_for(finished, seconds, every=0.1, what=f"run {run_id} as awaited")

    def owner(self, run_id: str) -> str:
        """The executor (replica) DBOS has the run's workflow under."""
        engine = create_engine(system_database_url(self.database_url))
        try:
            with engine.connect() as conn:
                found = conn.execute(
                    text("SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = :r"),
                    {"r": run_id},
                ).scalar_one()
        finally:
            engine.dispose()
        return str(found)


@pytest.fixture
def pair(tmp_path: Path, postgres_url: str) -> Iterator[Pair]:
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    replicas = [
        GatewayProcess(
            tmp_path / name,
            database_url=postgres_url,
            policy_file=policy,
            replica_id=name,
            settings=FAST,
        )
        for name in ("replica-a", "replica-b")
    ]
    try:
        for replica in replicas:
            replica.start()
        with replicas[0].client("admin", ADMIN_SCOPE) as admin:
            body = {"card_url": sales.url + "/.well-known/agent-card.json", "id": "sales"}
            assert admin.post("/agents", json=body).status_code == 201
            registered = admin.post("/flows", json=CRASH_FLOW)
            assert registered.status_code == 201, registered.text
        yield Pair(replicas[0], replicas[1], desk, postgres_url)
    finally:
        for replica in replicas:
            replica.stop()
        sales.stop()


def _start(gateway: GatewayProcess) -> str:
    with gateway.client("dana", "sales:quote") as dana:
        started = dana.post("/flows/crash-flow/runs", json={"input": {"quantity": 10}})
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    return run_id


def _step(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in run["steps"] if s["id"] == step_id)
    return found


def _work_in_flight(run: dict[str, Any]) -> bool:
    steps = {s["id"]: s for s in run["steps"]}
    return "work" in steps and bool(steps["work"]["upstream_task_id"])


def _finished(run: dict[str, Any]) -> bool:
    return run["state"] in ("completed", "failed")


def test_the_runs_of_a_dead_replica_are_taken_over_by_a_live_one(pair: Pair) -> None:
    run_id = _start(pair.a)
    before = pair.run(pair.a, run_id, _work_in_flight)
    assert pair.owner(run_id) == "replica-a"
    upstream_task = _step(before, "work")["upstream_task_id"]
    pair.a.kill()  # and not started again

    after = pair.run(pair.b, run_id, _finished)
    assert after["state"] == "completed", after
    assert pair.owner(run_id) == "replica-b"
    # Nothing sent twice: the quote was done, the work re-attached, one reply.
    assert [pair.desk.count(s) for s in ("quote", "work", "reply")] == [1, 1, 1]
    work = _step(after, "work")
    assert work["upstream_task_id"] == upstream_task
    assert work["attempts"] == 1
    assert "Dear ACME" in after["output"]


def test_a_live_replica_keeps_its_runs(pair: Pair) -> None:
    # B sweeps every half second throughout; A stays alive and finishes its run.
    run_id = _start(pair.a)
    after = pair.run(pair.a, run_id, _finished)
    assert after["state"] == "completed", after
    assert pair.owner(run_id) == "replica-a"
    assert [pair.desk.count(s) for s in ("quote", "work", "reply")] == [1, 1, 1]


def test_a_replica_taken_for_gone_between_two_heartbeats_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two heartbeats"):
        GatewayProcess(
            tmp_path / "bad",
            settings={"replica_heartbeat_seconds": 30, "replica_stale_seconds": 45},
        )


def test_the_replicas_are_registered_under_their_names(pair: Pair) -> None:
    engine = create_engine(system_database_url(pair.database_url))
    try:
        with engine.connect() as conn:
            ids = set(conn.execute(text("SELECT id FROM gateway_replicas")).scalars())
    finally:
        engine.dispose()
    assert ids == {"replica-a", "replica-b"}
