"""The composition root: the FastAPI app, wired from the subsystems' own parts.

Each subsystem builds and tears down its own parts (`storage.db.start`,
`delegation.startup.start`, `Agents.start`, `federation.startup.start`); this module
only connects them: the routes each door serves, what the REST API reads
(`AppState`), what request authentication reads (`RequestAuth`), who hears
whom (tool-list changes), and the background jobs each subsystem names.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import Depends, FastAPI

from gateway.a2a.startup import A2ADoor
from gateway.agents.oauth_clients import AgentOAuthClients
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
from gateway.api.state import AppState
from gateway.audit_export import startup as audit_export
from gateway.console import apidocs
from gateway.console import install as install_console
from gateway.delegation import startup as delegation
from gateway.federation import startup as mcp_federation
from gateway.federation.as_a2a import McpAgents
from gateway.federation.federation import McpFederation
from gateway.flows.startup import FlowsDoor
from gateway.http import openapi
from gateway.http.auth import RequestAuth
from gateway.http.limits import BodyLimitMiddleware
from gateway.http.problems import install_error_handlers
from gateway.http.queries import single_valued_query
from gateway.mcp.agent_tools import AgentSkillTools
from gateway.mcp.approvals import McpApprovals
from gateway.mcp.change_watch import ChangeWatch
from gateway.mcp.front import McpFront
from gateway.mcp.sets import SetCache
from gateway.mcp.tool_search import ToolSearch, catalog_of
from gateway.observability import startup as observability
from gateway.observability import tracing
from gateway.observability.http_metrics import HttpMetrics
from gateway.settings import Settings
from gateway.storage import db, runstate
from gateway.storage.bell import ChangeBell, Spaced
from gateway.storage.periodic import Periodic, paced_by_company
from gateway.storage.replicas import ReplicaDirectory
from registry.mcp_sets import SqlMcpSets
from registry.service import RegistryService
from registry.tool_index import SqlToolIndex

logger = logging.getLogger(__name__)
__version__ = "0.1.0"


def create_app(settings: Settings) -> FastAPI:
    def federation() -> McpFederation:
        state: AppState = app.state.switchboard
        return state.mcp

    handlers = Agents(__version__)
    a2a_door = A2ADoor(handlers)
    # Before the routes: a flow is a gateway-run agent of its own kind.
    flows_door = FlowsDoor(handlers)
    replicas = ReplicaDirectory(
        settings.effective_replica_url,
        replica_id=settings.replica_id,
        heartbeat_seconds=settings.replica_heartbeat_seconds,
        stale_seconds=settings.replica_stale_seconds,
    )
    mcp_front = McpFront(settings, federation, version=__version__, replicas=replicas)
    agent_tools = AgentSkillTools(handlers.front_door_parts, handlers.handler_for)
    mcp_front.agent_tools = agent_tools
    mcp_front.approvals = McpApprovals(
        lambda: handlers.approval_parts().approvals,
        lambda: handlers.approval_parts().deferrals,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            tracing.start(settings, __version__, stack)
            engine = await db.start(settings.effective_database_url, settings.sealing_secret, stack)
            # Announced before anything that runs durable work starts (gateway-run
            # tasks, the flows engine: their runs are named by this replica's
            # id), so it withdraws its row only once they have all stopped:
            # then it is gone, and its runs are another replica's to take.
            await replicas.announce(engine)
            stack.push_async_callback(replicas.withdraw)
            # Renewed from now until just before it withdraws -- through the
            # rest of the start and the whole of a clean stop, which waits for
            # runs writing their outcomes: a row left stale meanwhile would
            # have its runs taken while they still run here.
            heartbeat = Periodic("replica", replicas.heartbeat_seconds, replicas.renew)
            stack.push_async_callback(
                _cancel, asyncio.create_task(heartbeat.run_forever(), name="replica")
            )
            bell = ChangeBell(engine)
            core = await delegation.start(settings, engine, stack)
            a2a_parts = await handlers.start(core, replicas, stack)
            mcp_parts = await mcp_federation.start(core, stack)
            # Agents that take their users' own tokens get them from the same vault.
            if a2a_parts.front_door.consents is not None:
                a2a_parts.front_door.consents.connections = mcp_parts.connections
            observed = observability.start(settings, core, stack)
            exported = await audit_export.start(settings, core, stack, observed.metrics)
            flow_parts = await flows_door.start(
                core, lambda: mcp_parts.federation, a2a_parts.desk, replicas, stack
            )
            flow_parts.service.rt.step_listeners.append(observed.metrics.observe_step)
            # Virtual MCP servers' sets (`/mcp/{name}`).
            set_cache = SetCache(SqlMcpSets(engine))
            set_cache.listeners.append(mcp_front.set_changed)
            mcp_front.sets = set_cache
            mcp_front.tool_search = ToolSearch(
                SqlToolIndex(engine),
                catalog_of(federation, lambda: mcp_front.agent_tools),
                record=lambda event: federation().delegations.record_event(event),
                private_queries=settings.mcp_tool_search_private_queries,
            )
            app.state.switchboard = AppState(
                settings=settings,
                engine=engine,
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
                vendors=a2a_parts.gateway_run.vendors,
                approvals=a2a_parts.desk,
                metrics=observed.metrics,
                readiness=core.readiness,
                flows=flow_parts.service,
                connections=mcp_parts.connections,
                agent_clients=AgentOAuthClients(engine, settings.sealing_secret),
                mcp_sets=set_cache,
                mcp_notices=mcp_front.notifier,
                audit_export=exported,
            )
            request_auth = RequestAuth(settings, core.verifier, core.api_keys)
            request_auth.install(app)
            await a2a_door.serve_grpc(request_auth, settings, stack)
            mcp_parts.federation.listeners.append(mcp_front.tools_changed)
            mcp_parts.federation.upstreams.on_resource_updated = (
                mcp_front.offerings.resource_updated
            )
            mcp_parts.federation.upstreams.on_list_changed = mcp_front.upstream_list_changed
            core.registry.listeners.append(mcp_front.tools_changed)  # agents' skills
            core.registry.listeners.append(agent_tools.registry_changed)
            # FastAPI never runs a mounted app's lifespan: the MCP session
            # manager runs here, for the app's whole life.
            await stack.enter_async_context(mcp_front.run())
            jobs = (
                *core.jobs(),
                *mcp_parts.jobs(),
                *a2a_parts.jobs(),
                *observed.jobs(),
                *flow_parts.jobs(),
                *exported.jobs(),
                *_change_watch(
                    app,
                    settings,
                    ChangeWatch(
                        engine,
                        mcp_front.notifier,
                        set_moved=set_cache.changed,
                        catalog_moved=_invalidating(mcp_parts.federation, core.registry),
                    ),
                ),
            )
            periodic = [heartbeat, *(job for job in jobs if isinstance(job, Periodic))]
            policy_file = settings.policy_file is not None
            observed.metrics.watch(_paced(periodic, replicas, bell, policy_file))
            stack.push_async_callback(
                _cancel, asyncio.create_task(bell.run_forever(), name="change-bell")
            )
            for job in jobs:
                name, running = (job.name, job.run_forever()) if isinstance(job, Periodic) else job
                stack.push_async_callback(_cancel, asyncio.create_task(running, name=name))
            if runstate.write(settings):
                stack.callback(runstate.remove, settings)
            freeze_startup_heap(settings.gc_young_threshold)
            logger.info("Switchboard ready at %s", settings.effective_public_url)
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
        usage.router,
        runs.router,
        connections.router,
        api_keys.router,
    ):
        # No REST route takes a list in its query: a parameter given twice is refused.
        app.include_router(router, dependencies=[Depends(single_valued_query)])
    apidocs.install(app)
    install_console(app, settings, handlers)
    # First: routes are matched in order, and the A2A and MCP hot paths should
    # not be tried against every REST route before their own (no paths
    # overlap; tests/gateway/test_routes.py).
    others = McpAgents(handlers.front_door_parts, federation)
    app.router.routes[0:0] = [*a2a_door.routes(others), *mcp_front.routes()]
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        max_json_depth=settings.max_json_depth,
    )
    app.add_middleware(HttpMetrics)  # outside the body limit: refusals are counted too
    if tracing.configured():  # outermost: the span covers the whole request
        app.add_middleware(tracing.ServerSpans)
    return app


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


# What each job that looks only for another replica's changes reads: a
# notice naming one of these tables wakes it (`gateway.storage.bell`).
WATCHED_TABLES = {
    "mcp-change-watch": ("agents", "mcp_sets", "mcp_tools"),
    "mcp-upstreams": ("mcp_servers",),
    "policy-reloader": ("policy_versions",),
}


def _paced(
    jobs: list[Periodic], replicas: ReplicaDirectory, bell: ChangeBell, policy_file: bool
) -> list[Periodic]:
    """The jobs that look only for what another replica changed -- a set, the
    catalog or an agent (`mcp-change-watch`), an MCP server (`mcp-upstreams`),
    a stored policy (`policy-reloader`, without a policy file: the file is
    read at its own pace) -- look at their interval while another replica
    runs and its writes are not heard, and once a minute while this one is
    alone or they are (`paced_by_company`; `ChangeBell` wakes them): what this
    replica changes it applies itself, at once."""
    watches = {"mcp-change-watch", "mcp-upstreams"} | (
        set() if policy_file else {"policy-reloader"}
    )
    for job in jobs:
        if job.name in watches:
            own = job.interval()  # before pacing: what it looked at while not told
            paced_by_company(job, lambda: replicas.alone() or bell.heard(), replicas.on_others)
            wake = Spaced(job.wake, own)
            for table in WATCHED_TABLES[job.name]:
                bell.on(table, wake)
    return jobs


def _change_watch(app: FastAPI, settings: Settings, watch: ChangeWatch) -> list[Periodic]:
    """Another replica's changes told to this one's MCP clients (`gateway.mcp.change_watch`)."""
    every = settings.mcp_change_watch_seconds
    if not every:
        return []
    app.state.mcp_change_watch = watch
    return [Periodic("mcp-change-watch", every, watch.check)]


def _invalidating(federation: McpFederation, registry: RegistryService) -> Callable[[], None]:
    """The catalog moved elsewhere: this replica's copies dropped, its clients told."""

    def moved() -> None:
        federation.invalidate()  # its listeners tell every client
        registry.changed()  # the agents' skills, as tools

    return moved


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
