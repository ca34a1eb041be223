"""An idle gateway leaves its database alone (issue 57), on both databases:
with nothing to do, the coordination deferrals' look and the flow engine's
(DBOS's) background threads read the database every 30 s, not several times a
second, and the watches of what only another replica changes read once a
minute while the gateway is alone; and a run waiting at an approval from deep inside (its call step
waits on the inner run) adds no read a second.

Counted, not timed: every statement the process's engines send over a
window (a SQLAlchemy ``before_cursor_execute`` listener), by what it reads.
Each window starts well after the last thing done (`KICKED_SECONDS`: DBOS's
queue is looked at at its own pace that long after work is put on it), and
is shorter than the idle look's interval, so each idle read falls in it at
most once; the bounds leave room for that. Before, the same windows counted
about 40 reads of the deferrals and 60 of DBOS's threads, and the waiting
run about 10 more (`bench.idle` measures the rates).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from gateway.compat.dbos import KICKED_SECONDS
from tests.support.flows import wait_for_run
from tests.support.gateway import GatewayFactory

# DBOS's system tables (SQLite: in the gateway's file; PostgreSQL: schema dbos),
# and the advisory lock its background jobs take on PostgreSQL.
ENGINE = re.compile(
    r"\b(workflow_status|workflow_schedules|queues|notifications|operation_outputs"
    r"|application_versions|workflow_events)\b|pg_try_advisory"
)
# What only another replica changes or leaves -- the MCP change watch (sets),
# the MCP servers' reconcile, the gateway-run tasks' takeover -- read once a
# minute by a replica alone (they were read every 2, 5 and 5 s).
WATCHES = re.compile(r"\b(mcp_sets|mcp_servers|gateway_runs)\b")
WINDOW_SECONDS = 10.0

INNER = {
    "format": "switchboard.flow/v1",
    "id": "idle-inner",
    "name": "Waits at a checkpoint",
    "steps": [{"id": "manager", "checkpoint": {"prompt": "Go on?", "timeout_seconds": 3600}}],
}
OUTER = {
    "format": "switchboard.flow/v1",
    "id": "idle-outer",
    "name": "Calls the flow that waits",
    "steps": [{"id": "inner", "call": {"flow": "idle-inner"}, "input": "{go: `true`}"}],
}
POLICY = "version: 1\nagents:\n  idle-outer:\n    grant: [idle:go]\n"


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Statements sent while open: ``deferrals``, ``engine`` (DBOS),
    ``watches`` (`WATCHES`), ``other``."""
    counted: Counter[str] = Counter()
    lock = threading.Lock()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "coordination_deferrals" in statement:
            kind = "deferrals"
        elif ENGINE.search(statement):
            kind = "engine"
        elif WATCHES.search(statement):
            kind = "watches"
        else:
            kind = "other"
        with lock:
            counted[kind] += 1

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield counted
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def quiet_window() -> Counter[str]:
    time.sleep(KICKED_SECONDS + 2)
    with counting() as counted:
        time.sleep(WINDOW_SECONDS)
    return counted


def test_an_idle_gateway_reads_its_database_rarely(
    make_gateway: GatewayFactory, database_url: str | None
) -> None:
    gateway = make_gateway(database_url, policy=POLICY)
    with gateway.client() as admin:
        for flow in (INNER, OUTER):  # the flow engine runs once a flow exists
            assert admin.post("/flows", json=flow).status_code == 201
    counted = quiet_window()
    # Each idle look at most once in the window: the deferrals' one read;
    # DBOS's queue list, schedule list, internal queue (two reads), background
    # jobs (two updates, and the lock on PostgreSQL); the flows' takeover
    # sweep (one read every replica heartbeat, 10 s).
    assert counted["deferrals"] <= 1, counted
    assert counted["engine"] <= 10, counted
    # The three watches, each at most once (before: about 12 in all).
    assert counted["watches"] <= 3, counted
    # All told, at most a statement a second (issue 57; before: about 25 in
    # the window): the watches, the heartbeat (read, renew: twice if the
    # window meets two), the metrics' counts, the 30 s looks of the
    # deferrals, consents, lost A2A tasks and flow triggers, DBOS's threads.
    assert sum(counted.values()) <= WINDOW_SECONDS * 2, counted


def test_a_run_waiting_at_an_approval_from_deep_inside_adds_no_reads(
    make_gateway: GatewayFactory, database_url: str | None
) -> None:
    gateway = make_gateway(database_url, policy=POLICY)
    with gateway.client() as admin:
        for flow in (INNER, OUTER):
            assert admin.post("/flows", json=flow).status_code == 201
        started = admin.post("/flows/idle-outer/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        run = f"/flows/idle-outer/runs/{started.json()['id']}"
        wait_for_run(admin, started.json(), "input_required", seconds=60)
        counted = quiet_window()
        assert admin.get(run).json()["state"] == "input_required"
    # As idle, plus: DBOS's look for a cancellation of the outer call step
    # (every 15 s, it was every second) and the step's look for the inner
    # approval (every 30 s).
    assert counted["engine"] <= 12, counted
    assert counted["deferrals"] <= 1, counted
