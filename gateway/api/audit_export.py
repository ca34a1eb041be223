"""`/audit/export` (admin): where the audit export to the SIEM stands -- each
sink's streams (one per writing process), how many of their records are
still to deliver, the current failing stretch -- its dead letters, and their
replay (`gateway.audit_export`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.state import audited, state_of
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem

router = APIRouter(prefix="/audit/export", tags=["audit"])


class StreamState(BaseModel):
    sink: str
    writer: str = Field(description="the process whose records these are")
    last_id: int = Field(description="the last record the sink took")
    pending: int = Field(description="records still to deliver")
    delivered: int
    failures: int = Field(description="tries of the current batch that failed")
    next_attempt_at: datetime | None
    last_error: str | None
    lease_owner: str | None = Field(description="the replica delivering it")


class ExportState(BaseModel):
    sinks: list[str]
    streams: list[StreamState]
    dead_letters: int


class DeadLetter(BaseModel):
    id: int
    sink: str
    audit_id: int
    writer: str
    at: datetime
    error: str


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sink: str
    limit: int = Field(default=1000, ge=1, le=10_000)


class ReplayAnswer(BaseModel):
    replayed: int
    forgotten: int = Field(description="dead letters whose record retention had removed")
    failed: str | None = Field(description="why the replay stopped early (None: it did not)")


@router.get("", summary="The audit export's state", response_model=ExportState)
async def export_state(request: Request, _: AdminPrincipal) -> ExportState:
    state = state_of(request).audit_export
    rows = await state.streams.status()
    return ExportState(
        sinks=sorted(state.exporters),
        streams=[StreamState.model_validate(row) for row in rows],
        dead_letters=await state.streams.dead_letter_count(),
    )


@router.get("/dead-letters", summary="Records a sink did not take", response_model=list[DeadLetter])
async def dead_letters(
    request: Request,
    _: AdminPrincipal,
    sink: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetter]:
    rows = await state_of(request).audit_export.streams.dead_letters(sink, limit)
    return [DeadLetter.model_validate(row) for row in rows]


@router.post(
    "/dead-letters/replay",
    summary="Send a sink's dead letters again, oldest first",
    response_model=ReplayAnswer,
)
async def replay(request: Request, principal: AdminPrincipal, body: ReplayRequest) -> ReplayAnswer:
    state = state_of(request)
    exporter = state.audit_export.exporters.get(body.sink)
    if exporter is None:
        raise Problem(
            404,
            "not-found",
            "No such sink",
            f"no audit export sink {body.sink!r} is configured here",
        )
    outcome = await exporter.replay(body.limit)
    said = f"replayed {outcome.replayed}" + (
        f"; stopped: {outcome.failed}" if outcome.failed else ""
    )
    await audited(request, principal, "audit.export.replay", f"sink:{body.sink}", detail=said)
    return ReplayAnswer(replayed=outcome.replayed, forgotten=outcome.missing, failed=outcome.failed)
