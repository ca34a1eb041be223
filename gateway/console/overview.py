"""`/ui`: what there is and how it is doing.

Agents (health, circuit breaker), MCP servers and flows, each listed by the
REST API's own route function for this user -- so a user sees exactly what
`GET /agents`, `GET /mcp-servers` and `GET /flows` would show them -- and
the approvals waiting (all of them for an admin, one's own otherwise), and
the flow runs going and failed in the last hour (every run for an admin,
one's own otherwise, as `GET /flows/{id}/runs` decides). An admin also sees
what the coordination rules keep in force (`GET /coordination/holds`), the
last hour's traffic as small charts drawn by the gateway (calls, refusals,
p95 latency a minute: `gateway.delegation.audit_traffic`, admins only as the
audit is), the recent denials, the signing keys and the policy's state, its
last reload error included.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.api import agents as agents_api
from gateway.api import audit as audit_api
from gateway.api import coordination as coordination_api
from gateway.api import flows as flows_api
from gateway.api import mcp_servers as mcp_api
from gateway.api import policies as policies_api
from gateway.console.approvals import own_approvals
from gateway.console.charts import traffic_charts
from gateway.console.web import PREFIX, ConsoleRoute, current_user, page, redirect
from gateway.delegation.audit_reads import AuditQuery
from gateway.delegation.audit_traffic import RecentTraffic, Traffic
from gateway.storage.flow_tables import flow_runs
from gateway.storage.tables import approvals
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.models import AgentQuery

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
FAVICON = (resources.files("gateway.console") / "static" / "favicon.svg").read_bytes()
LISTED = 200  # the overview counts this many approvals; the pages behind it page on
AGENTS = 25  # the first agents (by id); the Agents page searches and pages on


@router.get("/")
async def root() -> Response:
    """A person opening the gateway's address lands in the console."""
    return redirect(PREFIX)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask the site's root for its icon whatever a page links (a
    redirect's target, an error page): the console's own, not a 404."""
    return Response(
        FAVICON,
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get(PREFIX)
async def overview(request: Request) -> Response:
    user = await current_user(request)
    principal = user.principal()
    # The reads are independent: made at once, each on its own pooled
    # connection, the page waits for the slowest rather than for their sum.
    admin = principal.has_scope(ADMIN_SCOPE)
    agents, servers, flows, runs, extra = await asyncio.gather(
        agents_api.list_agents(request, principal, AgentQuery(limit=AGENTS)),
        mcp_api.list_servers(request, principal),
        flows_api.list_flows(request, principal),
        run_counts(request.app.state.switchboard.engine, None if admin else principal),
        _admin_view(request, principal) if admin else _own_view(request, principal),
    )
    context: dict[str, Any] = {
        "agents": agents.items,
        "more_agents": agents.next_cursor is not None,
        "servers": servers.items,
        "flows": flows,
        "runs_active": runs[0],
        "runs_failed": runs[1],
        **extra,
    }
    return page(request, user, "overview.html", **context)


async def _admin_view(request: Request, principal: Principal) -> dict[str, Any]:
    """All approvals waiting, every agent counted, what coordination keeps
    in force, the last hour's traffic, the recent denials, the policy's
    state and the signing keys."""
    state = request.app.state.switchboard
    (pending, more_pending), total, denials, keys, holds, traffic = await asyncio.gather(
        pending_count(state.engine, LISTED),
        state.agents.count(),  # admins see every agent
        audit_api.page(request, AuditQuery(decision="deny", limit=10)),
        state.keys.list_keys(),
        _holds(request, principal),
        _traffic(request),
    )
    return {
        "pending": pending,
        "more_pending": more_pending,
        "agent_total": total,
        "denials": denials.items,
        "policy": await policies_api.current_policy(request, principal),
        "keys": keys,
        "holds": holds,
        "charts": traffic_charts(traffic),
    }


async def _holds(request: Request, principal: Principal) -> Counter[str]:
    """What the coordination rules keep in force, by kind (hold, cooldown,
    lease, budget), as the Holds page lists it."""
    if request.app.state.switchboard.delegations.coordination is None:
        return Counter()
    found = await coordination_api.list_holds(request, principal, None, None)
    return Counter(str(item["kind"]) for item in found["items"])


# One reader of recent traffic per database (an app's; tests build several).
_RECENT: weakref.WeakKeyDictionary[AsyncEngine, RecentTraffic] = weakref.WeakKeyDictionary()


async def _traffic(request: Request) -> Traffic:
    state = request.app.state.switchboard
    recent = _RECENT.get(state.engine)
    if recent is None:
        recent = _RECENT[state.engine] = RecentTraffic(state.engine)
    # This process's records first, as every audit read does.
    return await recent.get(before=state.audit.flush)


async def _own_view(request: Request, principal: Principal) -> dict[str, Any]:
    mine = await own_approvals(request, principal, "pending")
    return {"pending": len(mine), "more_pending": False}


async def pending_count(engine: AsyncEngine, cap: int) -> tuple[int, bool]:
    """How many approvals wait, up to ``cap`` (and whether there are more):
    counted on the state index, no record read or decoded."""
    waiting = select(approvals.c.id).where(approvals.c.state == "pending").limit(cap + 1)
    async with engine.connect() as conn:
        found = int(await conn.scalar(select(func.count()).select_from(waiting.subquery())) or 0)
    return min(found, cap), found > cap


async def run_counts(
    engine: AsyncEngine, owner: Principal | None, hours: float = 1.0
) -> tuple[int, int]:
    """Flow runs not ended, and runs failed in the last ``hours``, of every
    flow: all of them (``owner`` None, an admin), or ``owner``'s own --
    counted on `ix_flow_runs_finished`, no run read."""
    c = flow_runs.c
    mine: list[ColumnElement[bool]] = (
        [c.owner_subject == owner.subject, c.owner_issuer == owner.issuer] if owner else []
    )
    since = datetime.now(UTC) - timedelta(hours=hours)
    active = select(func.count()).where(c.finished_at.is_(None), *mine)
    failed = select(func.count()).where(c.finished_at >= since, c.state == "failed", *mine)
    async with engine.connect() as conn:
        row = (await conn.execute(select(active.scalar_subquery(), failed.scalar_subquery()))).one()
    return int(row[0] or 0), int(row[1] or 0)
