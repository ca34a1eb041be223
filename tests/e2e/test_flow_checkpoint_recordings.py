"""A checkpoint's recorded operations, read from DBOS's own tables (SQLite
and PostgreSQL): opening the checkpoint is its first look at the approval,
and a run an older gateway recorded -- an opening that did not look, then a
"check" -- is replayed as it was recorded after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from tests.support.dbos_records import (
    Operation,
    dbos_table,
    operations,
    system_engine,
    workflow_state,
)
from tests.support.flow_crash import CrashWorld, crashable
from tests.support.flows import POLICY
from tests.support.waiting import wait_for

# Kills gateway processes: on one database each in `make test` (`tests/conftest.py`).
pytestmark = pytest.mark.crash

FLOW_ID = "checkpoint-flow"
FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": FLOW_ID,
    "name": "A manager says go",
    "steps": [{"id": "manager", "checkpoint": {"prompt": "Go on?", "timeout_seconds": 600}}],
}
LOOK = ("state", "by", "reason", "now")


@pytest.fixture
def crash(tmp_path: Path, database_url: str | None) -> Iterator[CrashWorld]:
    # Looks an hour apart: each test reads every operation the run recorded,
    # and a look of its own between two steps of a slow machine would add one.
    settings = {"flow_checkpoint_poll_seconds": 3600}
    with crashable(tmp_path, database_url, POLICY, FLOW, settings=settings) as world:
        yield world


def _operations(crash: CrashWorld, run_id: str) -> list[Operation]:
    return operations(crash.database_url, run_id)


def _from_open(crash: CrashWorld, run_id: str) -> list[str]:
    """The names of the run's operations from its checkpoint's opening on."""
    names = [name for _, name, _ in _operations(crash, run_id)]
    return names[names.index("open manager") :]


def _waiting(crash: CrashWorld, run_id: str) -> list[Operation]:
    """The run's operations once it waits for its message: `DBOS.recv` records
    its timeout (``DBOS.sleep``, at the id after its own) when it starts
    waiting, and itself when the message came."""
    crash.until(FLOW_ID, run_id, lambda r: r["state"] == "input_required")

    def recorded() -> list[Operation] | None:
        ops = _operations(crash, run_id)
        return ops if any(name == "DBOS.sleep" for _, name, _ in ops) else None

    return wait_for(recorded, what="the checkpoint's wait recorded")


def _approve(crash: CrashWorld, run_id: str) -> dict[str, Any]:
    approval = next(s for s in crash.seen(FLOW_ID, run_id)["steps"] if s["id"] == "manager")[
        "approval_id"
    ]
    with crash.admin() as admin:
        decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    ended = crash.until(FLOW_ID, run_id, lambda r: r["state"] in ("completed", "failed"))
    # The run's state is written inside its "finish" step, whose own record
    # DBOS writes after it returns: the test reads every operation, so it
    # waits for the workflow to have ended in DBOS's tables too.
    wait_for(
        lambda: workflow_state(crash.database_url, run_id) in ("SUCCESS", "ERROR"),
        what=f"run {run_id}'s workflow ended in DBOS",
    )
    return ended


def test_opening_a_checkpoint_is_its_first_look(crash: CrashWorld) -> None:
    run_id = crash.start(FLOW_ID, {})
    recorded = _waiting(crash, run_id)
    at, opened = next((fid, out) for fid, name, out in recorded if name == "open manager")
    # Opened, then waiting (the recv's own id, at + 1, is recorded when it
    # ends): no second read of the approval it has just written.
    assert [(fid, name) for fid, name, _ in recorded if fid > at] == [(at + 2, "DBOS.sleep")]
    assert opened["state"] == "pending" and set(LOOK) <= set(opened), opened

    done = _approve(crash, run_id)
    assert done["state"] == "completed", done
    # Woken by the approval: one look, then the close.
    assert (names := _from_open(crash, run_id)) == [
        "open manager",
        "DBOS.recv",
        "DBOS.sleep",
        "check manager",
        "close manager",
        "finish",
    ], names


def _as_recorded_before(conn: Connection, table: str, run_id: str, opened_at: int) -> None:
    """Rewrite the run's recording as a gateway before this release made it:
    the opening's output without its look, and a "check" that saw the
    approval pending right after it (every later operation one id on)."""
    later = conn.execute(
        text(
            f"SELECT function_id FROM {table} "  # noqa: S608 -- the table name is ours
            "WHERE workflow_uuid = :run AND function_id > :at ORDER BY function_id DESC"
        ),
        {"run": run_id, "at": opened_at},
    ).all()
    for (function_id,) in later:  # from the last: the key (run, id) stays unique
        conn.execute(
            text(
                f"UPDATE {table} SET function_id = function_id + 1 "  # noqa: S608
                "WHERE workflow_uuid = :run AND function_id = :id"
            ),
            {"run": run_id, "id": function_id},
        )
    output = conn.execute(
        text(
            f"SELECT output FROM {table} "  # noqa: S608
            "WHERE workflow_uuid = :run AND function_id = :at"
        ),
        {"run": run_id, "at": opened_at},
    ).scalar_one()
    opened = json.loads(output)
    look = {key: opened.pop(key) for key in LOOK}
    conn.execute(
        text(
            f"UPDATE {table} SET output = :output "  # noqa: S608
            "WHERE workflow_uuid = :run AND function_id = :at"
        ),
        {"run": run_id, "at": opened_at, "output": json.dumps(opened)},
    )
    columns = list(conn.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys())  # noqa: S608
    copied = ", ".join(c for c in columns if c not in ("function_id", "function_name", "output"))
    conn.execute(
        text(
            f"INSERT INTO {table} (function_id, function_name, output, {copied}) "  # noqa: S608
            f"SELECT :check_at, 'check manager', :look, {copied} FROM {table} "
            "WHERE workflow_uuid = :run AND function_id = :at"
        ),
        {"run": run_id, "at": opened_at, "check_at": opened_at + 1, "look": json.dumps(look)},
    )


def test_a_run_recorded_by_an_older_gateway_replays_its_check(crash: CrashWorld) -> None:
    run_id = crash.start(FLOW_ID, {})
    recorded = _waiting(crash, run_id)
    opened_at = next(fid for fid, name, _ in recorded if name == "open manager")
    crash.gateway.kill()
    with system_engine(crash.database_url) as engine, engine.begin() as conn:
        _as_recorded_before(conn, dbos_table(engine, "operation_outputs"), run_id, opened_at)
    assert _from_open(crash, run_id) == ["open manager", "check manager", "DBOS.sleep"]

    crash.gateway.start()  # recovers the run: its replay reads what was recorded
    done = _approve(crash, run_id)
    assert done["state"] == "completed", done
    assert (names := _from_open(crash, run_id)) == [
        "open manager",
        "check manager",
        "DBOS.recv",
        "DBOS.sleep",
        "check manager",
        "close manager",
        "finish",
    ], names
