"""The approvals table's rows as `Approval`s, and the statements a held
call and a flow's checkpoint make on their way (`Approvals.hold`, `get`),
on the lean path (`gateway.storage.statements`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.delegation.approvals import Approval, Requester
from gateway.storage.statements import Sql
from gateway.storage.tables import approvals
from gateway.storage.typed_statement import Statement
from registry.tables import as_utc

# A pending approval as `Approvals.hold` stores it, and one read back by id.
_INSERT = Statement(
    approvals,
    "INSERT INTO approvals (id, state, kind, target, action_kind, action, tool, owner_subject,"
    " owner_issuer, txn, caller, trace_id, request, reasons, task_id, context_id, created_at)"
    " VALUES (:id, :state, :kind, :target, :action_kind, :action, :tool, :owner_subject,"
    " :owner_issuer, :txn, :caller, :trace_id, :request, :reasons, :task_id, :context_id,"
    " :created_at)",
)
_BY_ID = Statement(
    approvals,
    "SELECT id, state, kind, target, action_kind, action, tool, owner_subject, owner_issuer,"
    " caller, trace_id, request, reasons, task_id, context_id, created_at, decided_at,"
    " decided_by, decision_reason, outcome, result, finished_at, txn FROM approvals"
    " WHERE id = :id",
)


def insert_held(sql: Sql, row: dict[str, Any]) -> None:
    sql.typed(_INSERT, row)


def by_id(sql: Sql, approval_id: str) -> dict[str, Any] | None:
    rows = sql.typed(_BY_ID, {"id": approval_id})
    return rows[0] if rows else None


def approval_of(row: dict[str, Any]) -> Approval:
    caller = row["caller"]
    not_after = caller.get("not_after")
    return Approval(
        id=row["id"],
        state=row["state"],
        kind=row["kind"],
        target=row["target"],
        action_kind=row["action_kind"],
        action=row["action"],
        tool=row["tool"],
        requested_by=Requester(
            subject=caller["subject"],
            issuer=caller["issuer"],
            client_id=caller["client_id"],
            actors=list(caller["actors"]),
            scopes=list(caller["scopes"]),
            token_expires_at=datetime.fromtimestamp(not_after, UTC) if not_after else None,
            txn=caller.get("txn"),
        ),
        request=row["request"],
        reasons=list(row["reasons"]),
        trace_id=row["trace_id"],
        task_id=row["task_id"],
        context_id=row["context_id"],
        created_at=as_utc(row["created_at"]),
        decided_at=as_utc(row["decided_at"]) if row.get("decided_at") else None,
        decided_by=row.get("decided_by"),
        reason=row.get("decision_reason"),
        outcome=row.get("outcome"),
        finished_at=as_utc(row["finished_at"]) if row.get("finished_at") else None,
        answer=answer_of(row),
    )


def answer_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """A reviewer's answer to a flow's question (stored with the decision);
    the result of an approved call is not shown here."""
    result, request = row.get("result"), row.get("request")
    if row["kind"] != "flow" or not isinstance(request, dict) or "question" not in request:
        return None
    answer = result.get("answer") if isinstance(result, dict) else None
    return answer if isinstance(answer, dict) else None
