"""`GET /usage`: what flow runs used and cost -- tokens as their upstreams
reported them and cost at the policy's prices when each step ended
(`policies.prices`, `gateway.flows.spending`) -- per flow and per user. A user
sees their own runs; an admin everyone's (or one user's, with ``subject``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from gateway.api.runs import listed_owner
from gateway.api.state import state_of
from gateway.flows.models import UsageReport
from gateway.http.auth import CurrentPrincipal
from gateway.http.queries import IsoDatetime
from registry.tables import as_utc

router = APIRouter(tags=["flows"])


@router.get("/usage", summary="What flow runs used and cost, per flow and user")
async def usage(
    request: Request,
    principal: CurrentPrincipal,
    since: Annotated[
        IsoDatetime | None, Query(description="only runs started since (ISO 8601)")
    ] = None,
    subject: Annotated[
        str | None, Query(max_length=256, description="admins: one user's (with issuer)")
    ] = None,
    issuer: Annotated[str | None, Query(max_length=2048)] = None,
) -> UsageReport:
    spending = state_of(request).flows.rt.store.spending
    return await spending.report(
        owner=listed_owner(principal, subject, issuer),
        since=as_utc(since) if since is not None else None,  # no zone: UTC
    )
