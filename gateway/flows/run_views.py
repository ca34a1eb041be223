"""The flow tables' rows as the API shows them: a flow, a run's grant, a run
and its steps (`gateway.flows.store` reads them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.flows.models import FlowRecord, GrantView, RunView, StepView, TokenUsage
from gateway.flows.spending import summed, usage_of
from gateway.storage.readable import readable
from registry.tables import as_utc


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def flow_record(row: dict[str, Any]) -> FlowRecord:
    document = row["document"]
    return FlowRecord(
        id=row["id"],
        version=row["version"],
        name=row["name"],
        description=document.get("description"),
        digest=row["digest"],
        created_by=row["created_by"],
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
        document=document,
    )


def grant_view(row: dict[str, Any]) -> GrantView:
    return GrantView(
        id=row["id"],
        subject=row["subject"],
        issuer=row["issuer"],
        client_id=row["client_id"],
        actors=list(row["actors"]),
        scopes=list(row["scopes"]),
        issued_at=as_utc(row["issued_at"]),
        expires_at=as_utc(row["expires_at"]),
        revoked_at=_utc(row["revoked_at"]),
        revoked_by=row["revoked_by"],
        revoke_reason=row["revoke_reason"],
    )


def run_view(
    row: dict[str, Any],
    grant: dict[str, Any] | None,
    steps: list[StepView],
    *,
    usage: TokenUsage | None = None,
) -> RunView:
    """``usage``: of a run listed without its steps (else the steps' summed)."""
    return RunView(
        id=row["id"],
        flow_id=row["flow_id"],
        flow_version=row["flow_version"],
        state=row["state"],
        user={"subject": row["owner_subject"], "issuer": row["owner_issuer"]},
        input=readable(row["input"]),
        output=readable(row["output"]),
        error=row["error"],
        trace_id=row["trace_id"],
        context_id=row["context_id"],
        current_step=row["current_step"],
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
        finished_at=_utc(row["finished_at"]),
        grant=grant_view(grant) if grant else None,
        steps=steps,
        usage=summed([s.usage for s in steps]) if steps else usage,
        forked_from=row.get("forked_from"),
        fork_step=row.get("fork_step"),
    )


def step_view(row: dict[str, Any]) -> StepView:
    started, finished = _utc(row["started_at"]), _utc(row["finished_at"])
    duration = (finished - started).total_seconds() * 1000 if started and finished else None
    return StepView(
        id=row["step_id"],
        parent=row["parent"],
        kind=row["kind"],
        state=row["state"],
        target=row["target"],
        action=row["action"],
        attempts=row["attempts"],
        retries=max(0, row["attempts"] - 1),
        input=readable(row["input"]),
        output=readable(row["output"]),
        error=row["error"],
        upstream_task_id=row["upstream_task_id"],
        token=row["token"],
        approval_id=row["approval_id"],
        trace_id=row["trace_id"],
        started_at=started,
        finished_at=finished,
        duration_ms=duration,
        usage=usage_of(row.get("usage")),
        reused_from=row.get("reused_from"),
    )
