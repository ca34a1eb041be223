"""`/ui/runs`: the runs of every flow, newest first, filtered by state, flow,
user (admins) and start time -- `GET /runs`' own function with the
logged-in user as the caller, so a user sees their own runs and an admin
everyone's. Each run links to its page (`gateway.console.flows`); the
overview's counts of runs going and failed link here, filtered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from fastapi import APIRouter, Request, Response

from gateway.api import runs as runs_api
from gateway.console.web import PREFIX, ConsoleRoute, current_user, page
from policies.scopes import ADMIN_SCOPE

router = APIRouter(prefix=PREFIX + "/runs", route_class=ConsoleRoute, include_in_schema=False)

STATES: tuple[str, ...] = get_args(runs_api.RunState)
# "Started in the last ...": the choices the filter offers.
WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}


@router.get("")
async def runs_page(request: Request) -> Response:
    user = await current_user(request)
    asked = request.query_params
    state = asked.get("state") if asked.get("state") in STATES else None
    flow = (asked.get("flow") or "").strip()[:64] or None
    window = asked.get("since") if asked.get("since") in WINDOWS else None
    since = datetime.now(UTC) - WINDOWS[window] if window else None
    subject = None
    if ADMIN_SCOPE in user.principal().scopes:
        subject = (asked.get("user") or "").strip()[:256] or None
    found = await runs_api.list_all_runs(
        request,
        user.principal(),
        state=state,  # type: ignore[arg-type]  # one of STATES, checked above
        flow=flow,
        subject=subject,
        since=since,
        limit=200,
    )
    return page(
        request,
        user,
        "runs.html",
        runs=found,
        states=STATES,
        windows=list(WINDOWS),
        chosen={
            "state": state or "",
            "flow": flow or "",
            "since": window or "",
            "user": subject or "",
        },
    )
