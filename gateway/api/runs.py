"""`GET /runs`: the runs of every flow, newest first, filtered by state, flow,
user and start time -- one's own runs; an admin everyone's (or one user's).
The run of one flow, step by step, is `GET /flows/{id}/runs/{run}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from gateway.api.state import state_of
from gateway.flows.models import RunView
from gateway.http.auth import CurrentPrincipal
from policies.scopes import ADMIN_SCOPE

router = APIRouter(tags=["flows"])

RunState = Literal[
    "submitted",
    "working",
    "input_required",
    "auth_required",
    "completed",
    "failed",
    "canceled",
    "rejected",
]


@router.get("/runs", summary="Runs of every flow, newest first (one's own; admins: all)")
async def list_all_runs(
    request: Request,
    principal: CurrentPrincipal,
    state: Annotated[RunState | None, Query()] = None,
    flow: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[
        str | None, Query(max_length=256, description="admins: one user's (with issuer)")
    ] = None,
    issuer: Annotated[str | None, Query(max_length=2048)] = None,
    since: Annotated[datetime | None, Query(description="started since (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[RunView]:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without a zone is UTC
    owner: tuple[str, str] | None = (principal.subject, principal.issuer)
    if ADMIN_SCOPE in principal.scopes:
        owner = (subject, issuer or principal.issuer) if subject else None
    return await state_of(request).flows.runs(
        flow, owner=owner, limit=limit, state=state, since=since
    )
