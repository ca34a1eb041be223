"""`GET /runs`: the runs of every flow, newest first, filtered by state, flow,
user and start time -- one's own runs; an admin everyone's (or one user's).
The run of one flow, step by step, is `GET /flows/{id}/runs/{run}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from gateway.api.state import state_of
from gateway.flows.models import RunView
from gateway.flows.wait_definition import TaskStateName
from gateway.http.auth import CurrentPrincipal
from gateway.http.queries import IsoDatetime
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.tables import as_utc

router = APIRouter(tags=["flows"])

# A run's states are its A2A task's (`gateway.flows.runtime.RUN_STATES`).
RunState = TaskStateName


def listed_owner(
    principal: Principal, subject: str | None, issuer: str | None
) -> tuple[str, str] | None:
    """Whose runs a listing shows: one's own; an admin's, everyone's or the
    ``subject`` named (of ``issuer``, else the admin's own issuer)."""
    if ADMIN_SCOPE not in principal.scopes:
        return (principal.subject, principal.issuer)
    return (subject, issuer or principal.issuer) if subject else None


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
    since: Annotated[IsoDatetime | None, Query(description="started since (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[RunView]:
    return await state_of(request).flows.runs(
        flow,
        owner=listed_owner(principal, subject, issuer),
        limit=limit,
        state=state,
        since=as_utc(since) if since is not None else None,  # no zone: UTC
    )
