"""The task records' hot statements, on the lean path
(`gateway.storage.statements`): each operation is one transaction, run by
`gateway.delegation.tasks.TaskRecords`, whose docstring says what a record
is for. Owners are (subject, issuer) pairs here; `TaskRecords` makes them
`Owner`s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from gateway.storage.statements import Sql
from gateway.storage.tables import a2a_tasks
from gateway.storage.typed_statement import Statement

TERMINAL_STATES = frozenset(
    {
        "TASK_STATE_COMPLETED",
        "TASK_STATE_FAILED",
        "TASK_STATE_CANCELED",
        "TASK_STATE_REJECTED",
    }
)
Owned = tuple[str, str]  # (subject, issuer)
MAX_ID_LENGTH = 256

_OWNER = Statement(
    a2a_tasks,
    "SELECT owner_subject, owner_issuer FROM a2a_tasks"
    " WHERE agent_id = :agent_id AND task_id = :task_id",
)
# Read to change the snapshot (a status, an artifact): locked until written,
# so two streams' updates of one task never undo each other's.
_TASK_OWNER = Statement(
    a2a_tasks,
    "SELECT task, owner_subject, owner_issuer FROM a2a_tasks"
    " WHERE agent_id = :agent_id AND task_id = :task_id",
    for_update=True,
)
_SNAPSHOT = Statement(
    a2a_tasks,
    "SELECT task FROM a2a_tasks WHERE agent_id = :agent_id AND task_id = :task_id"
    " AND owner_subject = :owner_subject AND owner_issuer = :owner_issuer",
)
# One statement for a record: a new task is inserted; the caller's own is
# updated (its owner, skill, caller and creation kept); someone else's is left
# alone (no row changed). Both databases' upsert (SQLite 3.24, PostgreSQL 9.5).
_UPSERT_COLUMNS = (
    "INSERT INTO a2a_tasks (agent_id, task_id, owner_subject, owner_issuer, created_at, skill,"
    " owner_caller, context_id, state, updated_at, task) VALUES (:agent_id, :task_id,"
    " :owner_subject, :owner_issuer, :created_at, :skill, :owner_caller, :context_id, :state,"
    " :updated_at, :task) ON CONFLICT (agent_id, task_id) DO UPDATE SET"
    " context_id = excluded.context_id, state = excluded.state,"
    " updated_at = excluded.updated_at, task = excluded.task"
)
_MINE = (
    " WHERE a2a_tasks.owner_subject = excluded.owner_subject"
    " AND a2a_tasks.owner_issuer = excluded.owner_issuer"
)
# A record reaching a terminal state is back in contact (every reconcile_*
# column cleared, as `gateway.delegation.tasks._IN_CONTACT` says).
_UPSERT_MINE = {
    False: Statement(a2a_tasks, _UPSERT_COLUMNS + _MINE),
    True: Statement(
        a2a_tasks,
        _UPSERT_COLUMNS + ", reconcile_at = NULL, reconcile_since = NULL,"
        " reconcile_attempts = NULL, reconcile_caller = NULL" + _MINE,
    ),
}
_STATUS = {
    False: Statement(
        a2a_tasks,
        "UPDATE a2a_tasks SET state = :state, updated_at = :updated_at, task = :task"
        " WHERE agent_id = :agent_id AND task_id = :task_id",
    ),
    True: Statement(
        a2a_tasks,
        "UPDATE a2a_tasks SET state = :state, updated_at = :updated_at, task = :task,"
        " reconcile_at = NULL, reconcile_since = NULL, reconcile_attempts = NULL,"
        " reconcile_caller = NULL WHERE agent_id = :agent_id AND task_id = :task_id",
    ),
}

_ARTIFACTS = Statement(
    a2a_tasks,
    "UPDATE a2a_tasks SET updated_at = :updated_at, task = :task"
    " WHERE agent_id = :agent_id AND task_id = :task_id",
)


def _changed(sql: Sql, statement: Statement, params: dict[str, Any]) -> bool:
    return bool(sql.typed(statement, params)[0]["rowcount"])


def owner_of(sql: Sql, agent_id: str, task_id: str) -> Owned | None:
    rows = sql.typed(_OWNER, {"agent_id": agent_id, "task_id": task_id})
    return (rows[0]["owner_subject"], rows[0]["owner_issuer"]) if rows else None


def snapshot_of(sql: Sql, agent_id: str, owner: Owned, task_id: str) -> Any:
    mine = {"agent_id": agent_id, "task_id": task_id}
    rows = sql.typed(_SNAPSHOT, {**mine, "owner_subject": owner[0], "owner_issuer": owner[1]})
    return rows[0]["task"] if rows else None


def recording(
    agent_id: str,
    owner: Owned,
    task_id: str,
    skill: str | None,
    caller: dict[str, Any] | None,
    values: dict[str, Any],
    now: datetime,
) -> tuple[Statement, dict[str, Any]]:
    """The one statement that records a task's snapshot (`_UPSERT_MINE`) and
    its binds; it changes no row if the task is someone else's."""
    params = {
        "agent_id": agent_id,
        "task_id": task_id,
        "owner_subject": owner[0],
        "owner_issuer": owner[1],
        "context_id": values["context_id"],
        "state": values["state"],
        "updated_at": values["updated_at"],
        "task": values["task"],
        "created_at": now,
        "skill": skill,
        "owner_caller": caller,
    }
    return _UPSERT_MINE[values["state"] in TERMINAL_STATES], params


def record(
    sql: Sql,
    first: Callable[[Sql], Any] | None,
    agent_id: str,
    owner: Owned,
    task_id: str,
    skill: str | None,
    caller: dict[str, Any] | None,
    values: dict[str, Any],
    now: datetime,
) -> bool:
    """`TaskRecords.record` in one transaction of one statement (`recording`):
    False if the task is someone else's. ``first`` (if any) runs before, in
    the same transaction."""
    if first is not None:
        first(sql)
    return _changed(sql, *recording(agent_id, owner, task_id, skill, caller, values, now))


def _owned_snapshot(sql: Sql, where: dict[str, Any], owner: Owned) -> dict[str, Any] | bool | None:
    """The task's stored snapshot, to change; False if it is someone else's,
    None if there is no record yet."""
    rows = sql.typed(_TASK_OWNER, where)
    if not rows:
        return None
    row = rows[0]
    if (row["owner_subject"], row["owner_issuer"]) != owner:
        return False
    snapshot: dict[str, Any] = row["task"] or {}
    return snapshot


class ArtifactUpdate(NamedTuple):
    """An artifact update held for `record_updates` (the artifact as JSON)."""

    artifact: dict[str, Any]
    append: bool


class StatusUpdate(NamedTuple):
    """A status update held for `record_updates` (the status as JSON)."""

    status: dict[str, Any]
    state: str


def record_status(
    sql: Sql,
    agent_id: str,
    owner: Owned,
    task_id: str,
    status: dict[str, Any],
    state: str,
    now: datetime,
) -> dict[str, Any] | bool | None:
    """A status update on a task's record: its new snapshot; False if the
    task is someone else's; None if there is no record yet."""
    return record_updates(sql, agent_id, owner, task_id, [StatusUpdate(status, state)], now)


def record_artifact(
    sql: Sql,
    agent_id: str,
    owner: Owned,
    task_id: str,
    artifact: dict[str, Any],
    append: bool,
    now: datetime,
) -> bool | None:
    """An artifact update from a stream, in the task's snapshot (A2A 1.0
    §3.2.3: ``append`` adds its parts to the artifact of the same id, else it
    takes that artifact's place); as `record_status` answers."""
    found = record_updates(sql, agent_id, owner, task_id, [ArtifactUpdate(artifact, append)], now)
    return found if not isinstance(found, dict) else True


def record_updates(
    sql: Sql,
    agent_id: str,
    owner: Owned,
    task_id: str,
    updates: Sequence[ArtifactUpdate | StatusUpdate],
    now: datetime,
) -> dict[str, Any] | bool | None:
    """A stream's updates of one task, in order, written at once: the
    snapshot is what each update in turn leaves (a status replaces the
    status, the last one's state is the record's); as `record_status`
    answers."""
    where = {"agent_id": agent_id, "task_id": task_id}
    found = _owned_snapshot(sql, where, owner)
    if not isinstance(found, dict):
        return found
    snapshot = dict(found)
    artifacts = list(snapshot.get("artifacts") or [])
    state: str | None = None
    for update in updates:
        if isinstance(update, StatusUpdate):
            snapshot["status"], state = update.status, update.state
            continue
        artifact, append = update
        named = artifact.get("artifactId")
        same = next((i for i, a in enumerate(artifacts) if a.get("artifactId") == named), None)
        if same is None:
            artifacts.append(artifact)
        elif append:
            parts = [*(artifacts[same].get("parts") or []), *(artifact.get("parts") or [])]
            artifacts[same] = {**artifacts[same], "parts": parts}
        else:
            artifacts[same] = artifact
    if artifacts or "artifacts" in snapshot:
        snapshot["artifacts"] = artifacts
    if state is None:
        sql.typed(_ARTIFACTS, {**where, "updated_at": now, "task": snapshot})
    else:
        values = {**where, "state": state, "updated_at": now, "task": snapshot}
        sql.typed(_STATUS[state in TERMINAL_STATES], values)
    return snapshot


def storable(identifier: str) -> bool:
    # Ids come from clients and upstreams: too long or holding NUL (which
    # PostgreSQL text cannot store) means no task of ours has that id.
    return 0 < len(identifier) <= MAX_ID_LENGTH and "\x00" not in identifier
