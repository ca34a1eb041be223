"""Writing a step's record (`flow_steps`) so that recovery never rewrites it,
and the statements a run and its steps read and write every time, on the
lean path (`gateway.storage.statements`: one transaction in one step, with
no SQLAlchemy construct built per call).

DBOS recovers a run by running its workflow again from the start: the
operations it recorded return their results without running, but the
workflow's own code between them runs again -- among it the writes that mark
a map or a parallel step running and then done, a route taken, a step
skipped. Written as at first, they would give a step finished before the
crash the time of the replay, and one in flight a start after its own
branches'. So such a write (``replayable``) never moves a record back:

* ``started_at`` is kept once set;
* a settled record (completed, failed, skipped, not needed) takes a write of
  its own state only, keeping its ``finished_at``; any other is left out --
  the replay passes through states the record is already beyond.

The writes made inside a recorded operation (a call's attempt, a review's
reset: they run once, or again only when they never finished) are not
replayable: they change the record as they say.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from gateway.storage.flow_tables import flow_grants, flow_runs, flow_steps
from gateway.storage.statements import Sql
from gateway.storage.typed_statement import Statement

# The states a step does not leave again unless a review resets it.
SETTLED = ("completed", "failed", "skipped", "not_needed")
# The states a run ends in (`gateway.flows.store.TERMINAL_RUN_STATES`).
_ENDED = "('completed', 'failed', 'canceled', 'rejected')"


def shortened(step_id: str) -> str:
    """A long step id, cut and told apart by a digest, so that a record named
    after it (a held call's review, a question to a reviewer) fits the
    64-character step column."""
    return f"{step_id[:30]}~{hashlib.sha256(step_id.encode()).hexdigest()[:8]}"


def _every_column(table: Any) -> str:
    return ", ".join(column.name for column in table.c)


# Column names come from the tables, never from input.
_STEP_ROW = Statement(
    flow_steps,
    f"SELECT {_every_column(flow_steps)} FROM flow_steps"  # noqa: S608
    " WHERE run_id = :run_id AND step_id = :step_id",
)
_RUN_ROW = Statement(
    flow_runs,
    f"SELECT {_every_column(flow_runs)} FROM flow_runs WHERE id = :id",  # noqa: S608
)
_GRANT_ROW = Statement(
    flow_grants,
    f"SELECT {_every_column(flow_grants)} FROM flow_grants WHERE id = :id",  # noqa: S608
)
_RUN_STEPS = Statement(
    flow_steps,
    f"SELECT {_every_column(flow_steps)} FROM flow_steps"  # noqa: S608
    " WHERE run_id = :run_id ORDER BY started_at, step_id",
)
_RUN_USAGES = Statement(
    flow_steps,
    "SELECT usage FROM flow_steps WHERE run_id = :run_id AND usage IS NOT NULL",
)
_SET_CURRENT_STEP = Statement(
    flow_runs,
    "UPDATE flow_runs SET current_step = :current_step, updated_at = :updated_at"
    " WHERE id = :id AND state NOT IN ('completed', 'failed', 'canceled', 'rejected')",
)


def current_version(sql: Sql, flow_id: str) -> int | None:
    rows = sql.rows("SELECT version FROM flows WHERE id = :id", {"id": flow_id})
    return int(rows[0][0]) if rows else None


def step_row(sql: Sql, run_id: str, step_id: str) -> dict[str, Any] | None:
    rows = sql.typed(_STEP_ROW, {"run_id": run_id, "step_id": step_id})
    return rows[0] if rows else None


def run_row(sql: Sql, run_id: str) -> dict[str, Any] | None:
    rows = sql.typed(_RUN_ROW, {"id": run_id})
    return rows[0] if rows else None


def grant_row(sql: Sql, grant_id: str) -> dict[str, Any] | None:
    rows = sql.typed(_GRANT_ROW, {"id": grant_id})
    return rows[0] if rows else None


def run_usages(sql: Sql, run_id: str) -> list[Any]:
    """The usage each of the run's steps reported (those that did)."""
    return [row["usage"] for row in sql.typed(_RUN_USAGES, {"run_id": run_id})]


def run_view(
    sql: Sql, run_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """A run, its grant and its steps as one read: on SQLite one snapshot; on
    PostgreSQL (each statement its own snapshot) the steps are read before
    the run, so a step seen at a stage implies the run's row as it was
    written before that stage (its ``current_step``) is seen too."""
    steps = sql.typed(_RUN_STEPS, {"run_id": run_id})
    run = run_row(sql, run_id)
    return run, None if run is None else grant_row(sql, run["grant_id"]), steps


def enter_step(
    sql: Sql, run_id: str, step_id: str, grant_id: str, current: bool, now: datetime
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """`FlowStore.enter_step`, in one transaction."""
    if current:
        params = {"id": run_id, "current_step": step_id, "updated_at": now}
        sql.typed(_SET_CURRENT_STEP, params)
    return step_row(sql, run_id, step_id), grant_row(sql, grant_id)


class RunNotStored(Exception):
    """The run (or its grant) could not be stored: its id is taken."""


def create_run(sql: Sql, run: dict[str, Any], grant: dict[str, Any]) -> None:
    """A run's grant and then its record (which names it), in one
    transaction; `RunNotStored` if either id is taken (these writes' refusal
    only, not that of any other write in the transaction)."""
    try:
        sql.typed(_insert_row(flow_grants, tuple(sorted(grant))), grant)
        sql.typed(_insert_row(flow_runs, tuple(sorted(run))), run)
    except (IntegrityError, sqlite3.IntegrityError):
        raise RunNotStored(run["id"]) from None


def set_run(sql: Sql, run_id: str, values: dict[str, Any]) -> bool:
    """Update a run that has not ended (an ended run stays as it ended)."""
    statement = _set_run_statement(tuple(sorted(values)))
    return bool(sql.typed(statement, {**values, "id": run_id})[0]["rowcount"])


def write_step(
    sql: Sql, run_id: str, step_id: str, replayable: bool, values: dict[str, Any]
) -> None:
    """Create or update the step's record (``kind`` and ``trace_id`` needed to create)."""
    keys = tuple(sorted(values))
    state_given = replayable and values.get("state") is not None
    keep_start = replayable and values.get("started_at") is not None
    keep_finish = state_given and values.get("finished_at") is not None
    update = _update_step(keys, state_given, keep_start, keep_finish)
    this = {"run_id": run_id, "step_id": step_id}
    if sql.typed(update, {**values, **this})[0]["rowcount"]:
        return
    if replayable and step_row(sql, run_id, step_id) is not None:
        return  # refused: it is beyond what the replay writes
    new = {"attempts": 0, "state": "pending", **values, **this}
    sql.typed(_insert_step(tuple(sorted(new))), new)


@functools.cache
def _update_step(
    keys: tuple[str, ...], state_given: bool, keep_start: bool, keep_finish: bool
) -> Statement:
    sets = []
    for key in _columns(flow_steps, keys):
        if key == "started_at" and keep_start:
            sets.append("started_at = COALESCE(started_at, :started_at)")
        elif key == "finished_at" and keep_finish:
            # The right side reads the row as it was: its own state kept.
            sets.append(
                "finished_at = CASE WHEN state = :state"
                " THEN COALESCE(finished_at, :finished_at) ELSE :finished_at END"
            )
        else:
            sets.append(f"{key} = :{key}")
    where = "run_id = :run_id AND step_id = :step_id"
    if state_given:
        settled = ", ".join(f"'{state}'" for state in SETTLED)
        where += f" AND (state NOT IN ({settled}) OR state = :state)"
    return Statement(flow_steps, f"UPDATE flow_steps SET {', '.join(sets)} WHERE {where}")  # noqa: S608


def _insert_step(keys: tuple[str, ...]) -> Statement:
    return _insert_row(flow_steps, keys)


@functools.cache
def _insert_row(table: Any, keys: tuple[str, ...]) -> Statement:
    names = _columns(table, keys)
    binds = ", ".join(f":{key}" for key in names)
    return Statement(
        table,
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({binds})",  # noqa: S608
    )


@functools.cache
def _set_run_statement(keys: tuple[str, ...]) -> Statement:
    sets = ", ".join(f"{key} = :{key}" for key in _columns(flow_runs, keys))
    return Statement(
        flow_runs,
        f"UPDATE flow_runs SET {sets} WHERE id = :id AND state NOT IN {_ENDED}",  # noqa: S608
    )


def _columns(table: Any, keys: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [key for key in keys if key not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(unknown)}")
    return keys
