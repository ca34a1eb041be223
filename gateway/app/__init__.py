"""The composition root: the FastAPI app, wired from the subsystems' own parts.

Each subsystem builds and tears down its own parts (`storage.db.start`,
`delegation.startup.start`, `Agents.start`, `federation.startup.start`); this package
only connects them: the routes each door serves (`doors`), what the REST API reads
(`AppState`), what request authentication reads (`RequestAuth`), who hears
whom (tool-list changes), and the background jobs each subsystem names (`jobs`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.agents.oauth_clients import AgentOAuthClients
from gateway.api.state import AppState
from gateway.app.doors import Doors, build_doors, install_middleware, install_routes
from gateway.app.jobs import announce_replica, run_jobs
from gateway.app.subsystems import Subsystems, start_subsystems
from gateway.federation.federation import McpFederation
from gateway.http import openapi
from gateway.http.auth import RequestAuth
from gateway.mcp.front import McpFront
from gateway.mcp.sets import SetCache
from gateway.mcp.tool_search import ToolSearch, catalog_of
from gateway.observability import tracing
from gateway.observability.http_metrics import MetricsSlot
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.storage import db, runstate
from gateway.storage.bell import ChangeBell
from registry.mcp_sets import SqlMcpSets
from registry.model_process import ModelProcess
from registry.semantic_leg import SemanticLeg
from registry.tool_index import SqlToolIndex

logger = logging.getLogger(__name__)
__version__ = "0.1.0"


def create_app(settings: Settings) -> FastAPI:
    def federation() -> McpFederation:
        state: AppState = app.state.switchboard
        return state.mcp

    doors = build_doors(settings, federation, __version__)
    metrics = MetricsSlot()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await _start(app, settings, doors, federation, stack)
            state: AppState = app.state.switchboard
            metrics.metrics = state.metrics
            yield

    app = FastAPI(
        title="Switchboard",
        version=__version__,
        summary="A2A/MCP interoperability gateway",
        description=openapi.DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI from an installed package, not a CDN (`gateway.console.apidocs`).
        docs_url=None,
        redoc_url=None,
    )
    install_routes(app, settings, doors, federation)
    install_middleware(app, settings, metrics)
    return app


async def _start(
    app: FastAPI,
    settings: Settings,
    doors: Doors,
    federation: Callable[[], McpFederation],
    stack: contextlib.AsyncExitStack,
) -> None:
    """The lifespan's start, step by step; ``stack`` undoes it in reverse."""
    tracing.start(settings, __version__, stack)
    own_pool, _ = settings.database_pools()
    engine = await db.start(
        settings.effective_database_url, settings.sealing_secret, stack, pool_size=own_pool
    )
    heartbeat = await announce_replica(doors.replicas, engine, stack)
    bell = ChangeBell(engine)
    started = await start_subsystems(settings, engine, doors, stack)
    set_cache = _serve_sets_and_search(
        settings, engine, doors.mcp, federation, started.observed.metrics, stack
    )
    app.state.switchboard = _app_state(settings, started, set_cache, doors.mcp)
    request_auth = RequestAuth(settings, started.core.verifier, started.core.api_keys)
    request_auth.install(app)
    await doors.a2a.serve_grpc(request_auth, settings, stack)
    _wire_listeners(started, doors)
    # FastAPI never runs a mounted app's lifespan: the MCP session
    # manager runs here, for the app's whole life.
    await stack.enter_async_context(doors.mcp.run())
    run_jobs(app, settings, started, doors, set_cache, heartbeat, bell, stack)
    if runstate.write(settings):
        stack.callback(runstate.remove, settings)
    freeze_startup_heap(settings.gc_young_threshold)
    logger.info("Switchboard ready at %s", settings.effective_public_url)


def _serve_sets_and_search(
    settings: Settings,
    engine: AsyncEngine,
    mcp_front: McpFront,
    federation: Callable[[], McpFederation],
    metrics: GatewayMetrics,
    stack: contextlib.AsyncExitStack,
) -> SetCache:
    """Virtual MCP servers' sets (`/mcp/{name}`) and tool search, given to the /mcp door."""
    set_cache = SetCache(SqlMcpSets(engine))
    set_cache.listeners.append(mcp_front.set_changed)
    mcp_front.sets = set_cache
    leg = SemanticLeg(apart=ModelProcess()) if settings.mcp_tool_search_semantic else None
    if leg is not None:
        metrics.semantic_pending = lambda: leg.pending
        stack.callback(leg.close)
    mcp_front.tool_search = ToolSearch(
        SqlToolIndex(engine, semantic=leg),
        catalog_of(federation, lambda: mcp_front.agent_tools),
        record=lambda event: federation().delegations.record_event(event),
        private_queries=settings.mcp_tool_search_private_queries,
    )
    return set_cache


def _app_state(
    settings: Settings, started: Subsystems, set_cache: SetCache, mcp_front: McpFront
) -> AppState:
    """What the REST API's routers read (`gateway.api.state`)."""
    core, a2a_parts, mcp_parts = started.core, started.a2a, started.mcp
    return AppState(
        settings=settings,
        engine=started.engine,
        keys=core.keys,
        verifier=core.verifier,
        api_keys=core.api_keys,
        agents=core.agents,
        registry=core.registry,
        credentials=core.credentials,
        audit=core.audit,
        delegations=core.delegations,
        token_exchange=core.token_exchange,
        breakers=core.resilience.breakers,
        mcp=mcp_parts.federation,
        mcp_servers=mcp_parts.servers,
        vendors=a2a_parts.gateway_run.vendors,
        approvals=a2a_parts.desk,
        metrics=started.observed.metrics,
        readiness=core.readiness,
        flows=started.flows.service,
        connections=mcp_parts.connections,
        agent_clients=AgentOAuthClients(started.engine, settings.sealing_secret),
        mcp_sets=set_cache,
        mcp_notices=mcp_front.notifier,
        audit_export=started.exported,
    )


def _wire_listeners(started: Subsystems, doors: Doors) -> None:
    """Who hears whom: the /mcp door hears the catalog and the upstreams change."""
    federation, mcp_front = started.mcp.federation, doors.mcp
    federation.listeners.append(mcp_front.tools_changed)
    if mcp_front.tool_search is not None:
        federation.derived.append(mcp_front.tool_search.catch_up)
    federation.upstreams.on_resource_updated = mcp_front.offerings.resource_updated
    federation.upstreams.on_list_changed = mcp_front.upstream_list_changed
    started.core.registry.listeners.append(mcp_front.tools_changed)  # agents' skills
    started.core.registry.listeners.append(doors.agent_tools.registry_changed)
    # A flow is an agent too: registered or removed, its skills join or leave.
    started.flows.service.registered_listeners.append(started.core.registry.changed)


def freeze_startup_heap(young_threshold: int = 0) -> None:
    """Move everything alive after start-up out of the cyclic GC's reach, and
    collect the youngest generation less often.

    The SDKs (protobuf descriptors, pydantic models, SQLAlchemy metadata) leave
    a large long-lived heap that never becomes garbage; a full collection would
    walk all of it, and those walks are what a request's tail latency is made
    of (registry search's p99: `bench.registry_search`, docs/performance.md).
    Objects created later are collected as usual.

    Python's young threshold (700 net allocations) is far below what one large
    answer allocates: a `tools/list` page of 1,000 tools builds ~15,000
    containers (the SDK's `model_dump`, then its validation of the result).
    With 700 they outlive several young collections, reach the old generation,
    and every few pages set off a full collection that walks the whole registry
    snapshot, so a full listing grows faster than the registry. A larger
    threshold keeps a page's containers young; the A2A and MCP call paths do
    not move (`bench.scale`; before/after figures in
    docs/history/performance-to-2026-11-27.md, "100,000 agents and 10 million
    audit rows").
    """
    gc.collect()
    gc.freeze()
    if young_threshold:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)
