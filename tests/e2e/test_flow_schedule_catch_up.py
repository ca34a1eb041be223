"""Schedule ticks missed while no gateway ran (SQLite and PostgreSQL).

A real gateway process (`switchboard serve`) is stopped before four ticks of
three schedules and started again after them. `catch_up: all` with
`catch_up_max: 2` starts the newest two of the missed ticks, `latest` the
newest one, and a schedule that says nothing none (as cron). Each missed tick
is one run, for the schedule's identity, with the tick's time as input: two
replicas catching up at once on PostgreSQL start nothing twice, and another
restart starts nothing more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from gateway.flows.schedules import TICK_WORKFLOW
from policies.scopes import ADMIN_SCOPE
from tests.support.dbos_records import dbos_table, system_engine
from tests.support.flows import POLICY
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

# Kills gateway processes: on one database each in `make test` (`tests/conftest.py`).
pytestmark = pytest.mark.crash

FLOWS: dict[str, dict[str, Any]] = {
    "catch-all": {"catch_up": "all", "catch_up_max": 2},
    "catch-latest": {"catch_up": "latest"},
    "catch-none": {},  # the default: as cron, nothing
}
# Far enough ahead to register the flows and stop the gateway before the first tick.
LEAD_SECONDS = 20
TICKS = 4


def _flow(flow_id: str, cron: str, catch_up: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": flow_id,
        "name": f"Quote on a schedule ({flow_id})",
        "input": {"type": "object"},
        "triggers": [
            {
                "id": "tick",
                "schedule": {"cron": cron, **catch_up},
                "run_as": {"subject": "ops-bot", "scopes": ["sales:quote"]},
                "input": "{at: schedule.time}",
            }
        ],
        "steps": [
            {
                "id": "quote",
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: 'T-1', quantity: `1`}",
            }
        ],
    }


@dataclass
class Setup:
    gateway: GatewayProcess
    desk: SalesDesk
    tmp_path: Path
    database_url: str | None
    policy: Path

    def admin(self) -> httpx.Client:
        return self.gateway.client("admin", ADMIN_SCOPE)

    def runs(self, flow_id: str) -> list[dict[str, Any]]:
        with self.admin() as admin:
            found = admin.get(f"/flows/{flow_id}/runs", params={"limit": 200})
        assert found.status_code == 200, found.text
        runs: list[dict[str, Any]] = found.json()
        return runs

    def ticks(self, flow_id: str) -> list[int]:
        """The ticks (Unix seconds) the flow's runs were started for, in order."""
        return sorted(
            int(datetime.fromisoformat(r["input"]["at"]).timestamp()) for r in self.runs(flow_id)
        )


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY
        + "".join(f"  {f}:\n    require: [sales:quote]\n    grant: [sales:quote]\n" for f in FLOWS)
    )
    gateway = GatewayProcess(tmp_path / "data", database_url=database_url, policy_file=policy)
    made = Setup(gateway, desk, tmp_path, database_url, policy)
    try:
        gateway.start()
        with made.admin() as admin:
            body = {"card_url": sales.url + "/.well-known/agent-card.json", "id": "sales"}
            assert admin.post("/agents", json=body).status_code == 201
        yield made
    finally:
        gateway.stop()
        sales.stop()


def _start_together(gateways: list[GatewayProcess]) -> None:
    """Start the replicas at the same moment: each catches up on its own."""
    failed: list[BaseException] = []

    def start(gateway: GatewayProcess) -> None:
        try:
            gateway.start()
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=start, args=(g,)) for g in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed, failed


def _until(done: Any, seconds: float = 60) -> None:
    wait_for(done, seconds, every=0.2, what=f"{done}")


def _ticks_on_their_way(setup: Setup) -> int:
    """The ticks DBOS was given (a catch-up's backfill enqueues them before
    the gateway is ready) and has not yet run: each starts one run."""
    with (
        system_engine(setup.gateway.settings.effective_database_url) as db,
        db.connect() as conn,
    ):
        count = conn.scalar(
            text(
                f"SELECT count(*) FROM {dbos_table(db, 'workflow_status')} "  # noqa: S608 -- ours
                "WHERE name = :name AND status IN ('ENQUEUED', 'PENDING')"
            ),
            {"name": TICK_WORKFLOW},
        )
    return int(count or 0)


def test_missed_ticks_are_caught_up_as_each_schedule_says_once(setup: Setup) -> None:
    # Four ticks a little ahead, all in one minute of one hour (UTC), so the
    # schedule fires nowhere else today however long the test takes: the
    # gateway is stopped before them.
    first = int(time.time()) + LEAD_SECONDS
    if first % 60 > 60 - TICKS:
        first += 60 - first % 60  # into the next minute
    ticks = [first + i for i in range(TICKS)]
    minute, hour = (first // 60) % 60, (first // 3600) % 24
    cron = ",".join(str(t % 60) for t in ticks) + f" {minute} {hour} * * *"
    with setup.admin() as admin:
        for flow_id, catch_up in FLOWS.items():
            registered = admin.post("/flows", json=_flow(flow_id, cron, catch_up))
            assert registered.status_code == 201, registered.text
    setup.gateway.stop()
    assert time.time() < first - 1, "the gateway took too long to stop for this test's timing"
    time.sleep(max(0.0, ticks[-1] + 1.5 - time.time()))

    # Started again after the four ticks (on PostgreSQL, with a second replica).
    replicas = [setup.gateway]
    if setup.database_url is not None:
        replicas.append(
            GatewayProcess(
                setup.tmp_path / "replica-b",
                database_url=setup.database_url,
                policy_file=setup.policy,
                replica_id="replica-b",
            )
        )
    try:
        _start_together(replicas)
        _until(lambda: len(setup.ticks("catch-all")) == 2 and len(setup.ticks("catch-latest")) == 1)
        for flow_id in FLOWS:
            _until(
                lambda f=flow_id: all(r["state"] in ("completed", "failed") for r in setup.runs(f))
            )
        _until(lambda: _ticks_on_their_way(setup) == 0)  # nothing more is on its way
        assert setup.ticks("catch-all") == ticks[-2:]  # the newest two: the cap
        assert setup.ticks("catch-latest") == ticks[-1:]
        assert setup.ticks("catch-none") == []
        run = setup.runs("catch-latest")[0]
        with setup.admin() as admin:
            run = admin.get(f"/flows/catch-latest/runs/{run['id']}").json()
        assert run["state"] == "completed", run
        assert run["user"] == {"subject": "ops-bot", "issuer": "urn:switchboard:trigger"}
        assert run["grant"]["actors"] == ["schedule:catch-latest/tick", "catch-latest"]
        assert setup.desk.count("quote") == 3
        with setup.admin() as admin:
            audit = admin.get("/audit", params={"agent": "catch-all", "limit": 100}).json()
        caught = [r for r in audit["items"] if r.get("outcome") == "caught_up"]
        assert caught, audit
        assert "older missed ticks skipped (at most 2)" in caught[0]["detail"]
    finally:
        for replica in replicas[1:]:
            replica.stop()

    # Started again: the ticks caught up are not started twice.
    setup.gateway.stop()
    setup.gateway.start()  # catches up in its start-up, before it is ready
    _until(lambda: _ticks_on_their_way(setup) == 0)
    assert setup.ticks("catch-all") == ticks[-2:]
    assert setup.ticks("catch-latest") == ticks[-1:]
    assert setup.ticks("catch-none") == []
    assert setup.desk.count("quote") == 3
