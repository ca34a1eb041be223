"""The doors the app is built around, and what it serves before anything starts:
the routes in the order they are matched, and the middleware around them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, FastAPI

from gateway.a2a.startup import A2ADoor
from gateway.agents.startup import Agents
from gateway.api import (
    agent_clients,
    agents,
    api_keys,
    approvals,
    audit,
    connections,
    coordination,
    credentials,
    flow_webhooks,
    flows,
    health,
    mcp_servers,
    mcp_sets,
    metrics,
    oauth,
    policies,
    policy_edits,
    policy_whatif,
    runs,
    usage,
    vendor_agents,
    wellknown,
)
from gateway.api import audit_export as audit_export_api
from gateway.console import apidocs
from gateway.console import install as install_console
from gateway.federation.as_a2a import McpAgents
from gateway.federation.federation import McpFederation
from gateway.flows.startup import FlowsDoor
from gateway.http import openapi
from gateway.http.limits import BodyLimitMiddleware
from gateway.http.problems import install_error_handlers
from gateway.http.queries import single_valued_query
from gateway.mcp.agent_tools import AgentSkillTools
from gateway.mcp.approvals import McpApprovals
from gateway.mcp.front import McpFront
from gateway.observability import tracing
from gateway.observability.http_metrics import HttpMetrics, MetricsSlot
from gateway.settings import Settings
from gateway.storage.replicas import ReplicaDirectory


@dataclass(frozen=True)
class Doors:
    """What the app is built around before anything starts: the doors and the
    agents' handlers they share, whose routes exist before the lifespan runs."""

    handlers: Agents
    a2a: A2ADoor
    flows: FlowsDoor
    mcp: McpFront
    agent_tools: AgentSkillTools
    replicas: ReplicaDirectory


def build_doors(settings: Settings, federation: Callable[[], McpFederation], version: str) -> Doors:
    """The doors, made with the app: the SDKs' routes need their handlers
    before the lifespan opens the database (each asks for its parts per call)."""
    handlers = Agents(version)
    a2a_door = A2ADoor(handlers)
    # Before the routes: a flow is a gateway-run agent of its own kind.
    flows_door = FlowsDoor(handlers)
    replicas = ReplicaDirectory(
        settings.effective_replica_url,
        replica_id=settings.replica_id,
        heartbeat_seconds=settings.replica_heartbeat_seconds,
        stale_seconds=settings.replica_stale_seconds,
    )
    mcp_front = McpFront(settings, federation, version=version, replicas=replicas)
    agent_tools = AgentSkillTools(handlers.front_door_parts, handlers.handler_for)
    mcp_front.agent_tools = agent_tools
    mcp_front.approvals = McpApprovals(
        lambda: handlers.approval_parts().approvals,
        lambda: handlers.approval_parts().deferrals,
    )
    return Doors(handlers, a2a_door, flows_door, mcp_front, agent_tools, replicas)


def install_routes(
    app: FastAPI, settings: Settings, doors: Doors, federation: Callable[[], McpFederation]
) -> None:
    """The REST API's routers, the console, then the doors' routes in front."""
    install_error_handlers(app, [*mcp_servers.PROBLEMS, *flows.PROBLEMS])
    openapi.install(app)
    for router in (
        health.router,
        wellknown.router,
        agents.router,
        agent_clients.router,
        credentials.router,
        oauth.router,
        policies.router,
        policy_edits.router,
        policy_whatif.router,
        audit_export_api.router,
        audit.router,
        mcp_servers.router,
        mcp_sets.router,
        vendor_agents.router,
        approvals.router,
        coordination.router,
        metrics.router,
        flows.router,
        flow_webhooks.router,
        usage.router,
        runs.router,
        connections.router,
        api_keys.router,
    ):
        # No REST route takes a list in its query: a parameter given twice is refused.
        app.include_router(router, dependencies=[Depends(single_valued_query)])
    apidocs.install(app)
    install_console(app, settings, doors.handlers)
    # First: routes are matched in order, and the A2A and MCP hot paths should
    # not be tried against every REST route before their own (no paths
    # overlap; tests/gateway/test_routes.py).
    others = McpAgents(doors.handlers.front_door_parts, federation)
    app.router.routes[0:0] = [*doors.a2a.routes(others), *doors.mcp.routes()]


def install_middleware(app: FastAPI, settings: Settings, metrics: MetricsSlot) -> None:
    """Around every route: the body limit, the HTTP metrics, then tracing (outermost)."""
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        max_json_depth=settings.max_json_depth,
    )
    # Outside the body limit: refusals are counted too.
    app.add_middleware(HttpMetrics, slot=metrics)
    if tracing.configured():  # outermost: the span covers the whole request
        app.add_middleware(tracing.ServerSpans)
