"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
from a2a.server.request_handlers.request_handler import RequestHandler
from fastapi import FastAPI

from adapters.a2a import A2AUpstreams
from adapters.http import UpstreamHTTP
from adapters.mcp import UpstreamTimings
from gateway.a2a.admission import FrontDoorParts, StreamLimits
from gateway.a2a.approvals import (
    ApprovalAgentHandler,
    ApprovalDesk,
    ApprovalExecution,
    ApprovalParts,
)
from gateway.a2a.front import A2AFrontDoor
from gateway.a2a.gateway_handler import GatewayHandler
from gateway.a2a.handler import AgentHandler
from gateway.a2a.passthrough import PassThrough
from gateway.a2a.vendor import GatewayRun, VendorAgentHandler, VendorExecution
from gateway.api import (
    agents,
    approvals,
    audit,
    credentials,
    health,
    mcp_servers,
    oauth,
    policies,
    vendor_agents,
    wellknown,
)
from gateway.api.state import AppState
from gateway.delegation.approvals import Approvals
from gateway.delegation.audit import AuditLog
from gateway.delegation.breaker import Breakers, BreakerSettings
from gateway.delegation.handoffs import Resilience
from gateway.delegation.keystore import KeyStore
from gateway.delegation.pipeline import Delegations
from gateway.delegation.push import PushRelays
from gateway.delegation.replay import replay_cache
from gateway.delegation.retry import RetrySettings
from gateway.delegation.task_runner import TaskRunner
from gateway.delegation.tasks import TaskRecords
from gateway.delegation.token_exchange import TokenExchange
from gateway.delegation.vendor_agents import VendorAgents
from gateway.http.limits import BodyLimitMiddleware
from gateway.http.problems import install_error_handlers
from gateway.mcp.agent_tools import AgentSkillTools
from gateway.mcp.approvals import McpApprovals
from gateway.mcp.as_a2a import McpAgents
from gateway.mcp.federation import FederationSettings, McpFederation
from gateway.mcp.front import McpFront
from gateway.mcp.upstreams import McpUpstreams, UpstreamLimits
from gateway.settings import Settings
from gateway.storage import db, runstate
from policies.delegation import DelegatedTokenMinter
from policies.jwks import RemoteJwks
from policies.policy_file import PolicySource
from policies.tokens import TokenVerifier, TrustedIssuer
from registry.credentials import SqlCredentialStore
from registry.fetch import FetchLimits, SafeFetcher
from registry.health import HealthChecker
from registry.mcp_store import SqlMcpStore
from registry.service import RegistryService
from registry.ssrf import AddressPolicy
from registry.store import SqlAgentStore
from registry.vendor_store import SqlVendorStore

logger = logging.getLogger(__name__)
__version__ = "0.1.0"


def create_app(settings: Settings) -> FastAPI:
    def federation() -> McpFederation:
        mcp: McpFederation = app.state.switchboard.mcp
        return mcp

    mcp_front = McpFront(settings, federation, version=__version__)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            state = await _start(settings, stack, handler_for)
            app.state.switchboard = state
            state.mcp.listeners.append(mcp_front.tools_changed)
            state.mcp.upstreams.on_resource_updated = mcp_front.offerings.resource_updated
            state.registry.listeners.append(mcp_front.tools_changed)  # agents' skills
            # FastAPI never runs a mounted app's lifespan: the MCP session
            # manager runs here, for the app's whole life.
            await stack.enter_async_context(mcp_front.run())
            for name, job in (
                ("health-checker", state.health.run_forever()),
                ("audit-writer", state.audit.run_forever()),
                ("policy-reloader", _reload_policy(state)),
                ("mcp-upstreams", state.mcp.upstreams.run_forever()),
                ("gateway-runs", state.gateway_run.runner.run_forever()),
            ):
                stack.push_async_callback(_cancel, asyncio.create_task(job, name=name))
            runstate.write(settings)
            freeze_startup_heap()
            logger.info("Switchboard ready at %s", settings.effective_public_url)
            yield

    app = FastAPI(
        title="Switchboard",
        version=__version__,
        summary="A2A/MCP interoperability gateway",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(wellknown.router)
    app.include_router(agents.router)
    app.include_router(credentials.router)
    app.include_router(oauth.router)
    app.include_router(policies.router)
    app.include_router(audit.router)
    app.include_router(mcp_servers.router)
    app.include_router(vendor_agents.router)
    app.include_router(approvals.router)

    def parts() -> FrontDoorParts:
        front_door: FrontDoorParts = app.state.switchboard.front_door
        return front_door

    handler = AgentHandler(parts)

    def gateway_run() -> GatewayRun:
        run: GatewayRun = app.state.switchboard.gateway_run
        return run

    vendor = VendorAgentHandler(parts, gateway_run)

    def handler_for(card: Mapping[str, Any]) -> RequestHandler:
        return vendor if vendor.serves(dict(card)) else handler

    def approval_parts() -> ApprovalParts:
        desk: ApprovalDesk = app.state.switchboard.approvals
        return desk.parts

    mcp_front.agent_tools = AgentSkillTools(parts, handler_for)
    mcp_front.approvals = McpApprovals(lambda: approval_parts().approvals)
    front = A2AFrontDoor(
        handler,
        GatewayHandler(parts),
        pass_through=PassThrough(handler),
        others=McpAgents(parts, federation),
        gateway_run=vendor,
        approvals=ApprovalAgentHandler(parts, approval_parts),
    )
    # First: routes are matched in order, and the A2A and MCP hot paths should
    # not be tried against every REST route before their own (no paths
    # overlap; tests/gateway/test_routes.py).
    app.router.routes[0:0] = [*front.routes(), *mcp_front.routes()]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    return app


async def _start(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    handler_for: Callable[[Mapping[str, Any]], RequestHandler],
) -> AppState:
    engine = db.create_engine(settings.effective_database_url)
    stack.push_async_callback(engine.dispose)
    await db.upgrade(engine, settings.sealing_secret)

    keys = KeyStore(engine, settings.sealing_secret, settings.key_recheck_seconds)
    await keys.active_key()

    jwks_client = httpx.AsyncClient(timeout=5.0, trust_env=False)
    stack.push_async_callback(jwks_client.aclose)
    verifier = TokenVerifier(
        [
            TrustedIssuer(
                issuer=settings.effective_public_url,
                keys=keys,
                audience=settings.effective_resource_id,
                accept_dev_tokens=settings.dev,
            ),
            *(
                TrustedIssuer(
                    issuer=i.issuer,
                    keys=RemoteJwks(
                        i.jwks_url,
                        jwks_client,
                        cache_seconds=settings.jwks_cache_seconds,
                        min_refetch_seconds=settings.jwks_min_refetch_seconds,
                    ),
                    audience=i.audience or settings.effective_resource_id,
                    accepted_types=frozenset(i.accepted_types),
                )
                for i in settings.trusted_issuers
            ),
        ],
        leeway_seconds=settings.token_leeway_seconds,
    )

    fetcher = SafeFetcher(
        AddressPolicy.from_cidrs(settings.ssrf_allow_cidrs, allow_loopback=settings.dev),
        FetchLimits(
            timeout_seconds=settings.fetch_timeout_seconds,
            max_bytes=settings.fetch_max_bytes,
            max_redirects=settings.fetch_max_redirects,
        ),
    )
    stack.push_async_callback(fetcher.aclose)
    store = SqlAgentStore(engine)
    checker = HealthChecker(
        store,
        fetcher,
        interval_seconds=settings.health_check_interval_seconds,
        failure_threshold=settings.health_failure_threshold,
        success_threshold=settings.health_success_threshold,
        concurrency=settings.health_check_concurrency,
    )
    policy = PolicySource(settings.policy_file)
    audit_log = AuditLog(engine, settings.audit_flush_seconds)
    stack.push_async_callback(audit_log.close)  # runs after the writer task is cancelled
    replay = replay_cache(settings.redis_url)
    stack.push_async_callback(replay.aclose)
    minter = DelegatedTokenMinter(
        keys, settings.effective_public_url, ttl_seconds=settings.delegated_token_ttl_seconds
    )
    delegations = Delegations(
        store, policy, minter, audit_log, max_depth=settings.max_delegation_depth
    )
    credential_store = SqlCredentialStore(engine)
    upstreams = A2AUpstreams(
        fetcher,
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
        stream_idle_seconds=settings.stream_idle_seconds,
        max_response_bytes=settings.upstream_max_bytes,
        max_stream_bytes=settings.stream_max_bytes,
    )
    stack.push_async_callback(upstreams.aclose)
    resilience = Resilience(
        Breakers(
            BreakerSettings(
                threshold=settings.breaker_failure_threshold,
                cooldown_seconds=settings.breaker_cooldown_seconds,
            )
        ),
        RetrySettings(
            attempts=settings.retry_max_attempts,
            base_delay_seconds=settings.retry_base_delay_seconds,
            max_delay_seconds=settings.retry_max_delay_seconds,
        ),
    )
    front_door = FrontDoorParts(
        delegations=delegations,
        tasks=TaskRecords(engine),
        upstreams=upstreams,
        default_timeout_seconds=settings.upstream_timeout_seconds,
        stream_limits=StreamLimits(max_seconds=settings.stream_max_seconds),
        signing_key=keys.active_key,
        public_url=settings.effective_public_url,
        token_endpoint=settings.token_endpoint,
        version=__version__,
        fetcher=fetcher,
        push=PushRelays(engine, keys, settings.effective_public_url, settings.sealing_secret),
        resilience=resilience,
    )
    mcp_store = SqlMcpStore(engine)
    federation: McpFederation | None = None

    def tools_changed() -> None:
        if federation is not None:
            federation.invalidate()

    mcp_upstreams = McpUpstreams(
        mcp_store,
        fetcher.policy,
        minter,
        secret=settings.sealing_secret,
        limits=UpstreamLimits(
            connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
            call_timeout_seconds=settings.upstream_timeout_seconds,
            max_response_bytes=settings.upstream_max_bytes,
        ),
        timings=UpstreamTimings(
            connect_seconds=settings.mcp_connect_timeout_seconds,
            probe_seconds=settings.mcp_probe_seconds,
            call_seconds=settings.upstream_timeout_seconds,
            reconnect_max_seconds=settings.mcp_reconnect_max_seconds,
        ),
        reconcile_seconds=settings.mcp_reconcile_seconds,
        on_change=tools_changed,
        passthrough=settings.mcp_passthrough,
    )
    stack.push_async_callback(mcp_upstreams.aclose)  # after the reconciler task is cancelled
    federation = McpFederation(
        mcp_store,
        mcp_upstreams,
        delegations,
        fetcher,
        FederationSettings(
            stdio_commands=settings.stdio_command_lines,
            auto_approve_new_tools=settings.mcp_auto_approve_new_tools,
            sealing_secret=settings.sealing_secret,
            connect_timeout_seconds=settings.mcp_connect_timeout_seconds,
            default_timeout_seconds=settings.upstream_timeout_seconds,
        ),
        resilience,
    )
    vendor_http = UpstreamHTTP(
        fetcher.policy,
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
        idle_timeout_seconds=settings.stream_idle_seconds,
        max_response_bytes=settings.upstream_max_bytes,
        max_stream_bytes=settings.stream_max_bytes,
    )
    stack.push_async_callback(vendor_http.aclose)
    vendors = VendorAgents(
        SqlVendorStore(engine, store),
        store,
        vendor_http,
        public_url=settings.effective_public_url,
        sealing_secret=settings.sealing_secret,
        secrets=settings.secrets,
    )
    gateway_run: GatewayRun | None = None

    def running() -> GatewayRun:
        assert gateway_run is not None
        return gateway_run

    execution = VendorExecution(lambda: front_door, running)

    async def idempotent(agent_id: str, skill: str | None) -> bool:
        call = await vendors.store.get(agent_id)
        return call is not None and any(s.id == skill and s.idempotent for s in call.config.skills)

    approval_store = Approvals(engine, audit_log)
    # One runner for every gateway-run task: vendor calls, and approved calls.
    execute = ApprovalExecution(lambda: front_door, approval_store, handler_for).dispatching(
        execution
    )
    runner = TaskRunner(
        engine,
        front_door.tasks,
        lambda: execute,
        lease_seconds=settings.gateway_run_lease_seconds,
        idempotent=idempotent,
    )
    stack.push_async_callback(runner.aclose)  # before the pool closes, after the lease task
    gateway_run = GatewayRun(vendors, runner)
    return AppState(
        settings=settings,
        engine=engine,
        keys=keys,
        verifier=verifier,
        fetcher=fetcher,
        agents=store,
        registry=RegistryService(store, fetcher),
        health=checker,
        credentials=credential_store,
        audit=audit_log,
        delegations=delegations,
        token_exchange=TokenExchange(
            delegations=delegations,
            agents=store,
            credentials=credential_store,
            verifier=verifier,
            replay=replay,
            audit=audit_log,
            issuer=settings.effective_public_url,
            token_endpoint=settings.token_endpoint,
            leeway_seconds=settings.token_leeway_seconds,
            mcp_servers=mcp_store,
        ),
        front_door=front_door,
        mcp=federation,
        vendors=vendors,
        gateway_run=gateway_run,
        approvals=ApprovalDesk(lambda: front_door, ApprovalParts(approval_store, runner)),
    )


async def _reload_policy(state: AppState) -> None:
    source = state.delegations.policy
    while True:
        await asyncio.sleep(state.settings.policy_reload_seconds)
        try:
            source.reload_if_changed()
        except Exception:  # pragma: no cover - never let the reloader die
            logger.exception("policy reload check failed")


def freeze_startup_heap() -> None:
    """Move everything alive after start-up out of the cyclic GC's reach.

    The SDKs (protobuf descriptors, pydantic models, SQLAlchemy metadata) leave
    a large long-lived heap; every full collection walked all of it, ~50 ms on
    these machines, which set the registry search p99 (bench/registry_search.py:
    p99 55 ms -> 7 ms). Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
