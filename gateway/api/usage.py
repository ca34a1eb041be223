"""`GET /usage`: what flow runs used and cost -- tokens as their upstreams
reported them and cost at the policy's prices when each step ended
(`policies.prices`, `gateway.flows.spending`) -- per flow and per user. A user
sees their own runs; an admin everyone's (or one user's, with ``subject``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from gateway.api.state import state_of
from gateway.flows.models import UsageReport
from gateway.http.auth import CurrentPrincipal
from policies.scopes import ADMIN_SCOPE

router = APIRouter(tags=["flows"])


@router.get("/usage", summary="What flow runs used and cost, per flow and user")
async def usage(
    request: Request,
    principal: CurrentPrincipal,
    since: Annotated[
        datetime | None, Query(description="only runs started since (ISO 8601)")
    ] = None,
    subject: Annotated[
        str | None, Query(max_length=256, description="admins: one user's (with issuer)")
    ] = None,
    issuer: Annotated[str | None, Query(max_length=2048)] = None,
) -> UsageReport:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without a zone is UTC
    spending = state_of(request).flows.rt.store.spending
    owner: tuple[str, str] | None = (principal.subject, principal.issuer)
    if ADMIN_SCOPE in principal.scopes:
        owner = (subject, issuer or principal.issuer) if subject else None
    return await spending.report(owner=owner, since=since)
