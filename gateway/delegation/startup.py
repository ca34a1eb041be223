"""The delegation core's start-up: what every door delegates through.

Built once per process by `gateway.app`'s lifespan, torn down by the exit
stack it is given (callbacks run in reverse: the background jobs are cancelled
before the pools they use are closed).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.api_keys import ApiKeys
from gateway.delegation.approval_store import Approvals
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import new_writer_id
from gateway.delegation.breaker import Breakers, BreakerSettings
from gateway.delegation.coordination import Coordination, Store
from gateway.delegation.coordination_redis import RedisStore
from gateway.delegation.coordination_sql import SqlStore
from gateway.delegation.deferrals import canonicalise_waiting
from gateway.delegation.delegate import Delegate
from gateway.delegation.keystore import KeyStore
from gateway.delegation.pipeline import Delegations
from gateway.delegation.policy_versions import PolicyReloader
from gateway.delegation.push import PushRelays
from gateway.delegation.rate_limits import RateLimits
from gateway.delegation.replay import ReplayCache
from gateway.delegation.resilience import Resilience
from gateway.delegation.retry import RetrySettings
from gateway.delegation.tasks import TaskRecords
from gateway.delegation.token_exchange import TokenExchange
from gateway.settings import Settings
from gateway.settings.workers import rate_limits_problem
from gateway.storage.periodic import Periodic
from gateway.storage.readiness import Readiness
from policies.api_keys import ACTOR_PREFIX, key_limits
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
from registry.tls import client_tls

logger = logging.getLogger(__name__)

# What runs for the app's whole life: a periodic pass (`gateway.storage.
# periodic`), or a coroutine of its own (the audit writer's batching loop).
Job = Periodic | tuple[str, Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class DelegationCore:
    """The registry, identity and delegation parts every door shares."""

    settings: Settings
    engine: AsyncEngine
    keys: KeyStore
    verifier: TokenVerifier
    api_keys: ApiKeys  # credentials for scripts and services, beside tokens
    fetcher: SafeFetcher
    agents: SqlAgentStore
    registry: RegistryService
    health: HealthChecker
    credentials: SqlCredentialStore
    mcp_servers: SqlMcpStore
    audit: AuditLog
    minter: DelegatedTokenMinter
    delegations: Delegations
    resilience: Resilience
    delegate: Delegate  # decide, mint, send, record: every door's upstream call
    tasks: TaskRecords
    push: PushRelays
    approvals: Approvals
    token_exchange: TokenExchange
    readiness: Readiness
    policy_reloader: PolicyReloader  # the policy file's, or the newest stored version

    def jobs(self) -> list[Job]:
        """What runs for the app's whole life, in the order it is started."""
        settings, push = self.settings, self.push
        return [
            Periodic("health-checker", self.health.interval_seconds, self.health.check_all),
            ("audit-writer", self.audit.run_forever()),
            Periodic(
                "policy-reloader",
                lambda: settings.policy_reload_seconds,
                self.policy_reloader.reload,
                now=False,
            ),
            Periodic(
                "push-pending-sweeper",
                PENDING_PUSH_SWEEP_SECONDS,
                functools.partial(_sweep_pending_push, push, settings),
                now=False,
            ),
        ]


async def start(
    settings: Settings, engine: AsyncEngine, stack: contextlib.AsyncExitStack
) -> DelegationCore:
    keys = KeyStore(engine, settings.sealing_secret, settings.key_recheck_seconds)
    await keys.active_key()
    verifier = _verifier(settings, keys, stack)
    fetcher = _fetcher(settings, stack)
    store = SqlAgentStore(engine)
    checker = _health_checker(settings, store, fetcher)
    audit_log = AuditLog(engine, settings.audit_flush_seconds, new_writer_id(settings.replica_id))
    stack.push_async_callback(audit_log.close)  # runs after the writer task is cancelled
    readiness = Readiness(engine, settings.redis_url)
    stack.push_async_callback(readiness.aclose)
    minter = DelegatedTokenMinter(
        keys, settings.effective_public_url, ttl_seconds=settings.delegated_token_ttl_seconds
    )
    delegations = _delegations(settings, engine, store, minter, audit_log, stack)
    api_keys = ApiKeys(engine)
    _limit_by_keys(delegations, api_keys)
    policy_reloader = PolicyReloader(engine, delegations.policy)
    await policy_reloader.start()
    await _canonical_coordination_keys(delegations, engine)
    credentials = SqlCredentialStore(engine)
    mcp_servers = SqlMcpStore(engine)
    resilience = _resilience(settings)
    tasks = TaskRecords(engine)
    stack.push_async_callback(tasks.aclose)
    approvals = Approvals(engine, audit_log)
    stack.push_async_callback(approvals.aclose)
    return DelegationCore(
        settings=settings,
        engine=engine,
        keys=keys,
        verifier=verifier,
        api_keys=api_keys,
        fetcher=fetcher,
        agents=store,
        registry=RegistryService(store, fetcher, checker),
        health=checker,
        credentials=credentials,
        mcp_servers=mcp_servers,
        audit=audit_log,
        minter=minter,
        delegations=delegations,
        resilience=resilience,
        delegate=Delegate(delegations, resilience),
        tasks=tasks,
        push=PushRelays(engine, keys, settings.effective_public_url, settings.sealing_secret),
        approvals=approvals,
        token_exchange=_token_exchange(
            settings, engine, delegations, store, credentials, verifier, audit_log, mcp_servers
        ),
        readiness=readiness,
        policy_reloader=policy_reloader,
    )


def _token_exchange(
    settings: Settings,
    engine: AsyncEngine,
    delegations: Delegations,
    agents: SqlAgentStore,
    credentials: SqlCredentialStore,
    verifier: TokenVerifier,
    audit_log: AuditLog,
    mcp_servers: SqlMcpStore,
) -> TokenExchange:
    """`POST /oauth/token` (RFC 8693), for agents delegating onwards."""
    return TokenExchange(
        delegations=delegations,
        agents=agents,
        credentials=credentials,
        verifier=verifier,
        replay=ReplayCache(engine),
        audit=audit_log,
        issuer=settings.effective_public_url,
        token_endpoint=settings.token_endpoint,
        leeway_seconds=settings.token_leeway_seconds,
        mcp_servers=mcp_servers,
    )


def _fetcher(settings: Settings, stack: contextlib.AsyncExitStack) -> SafeFetcher:
    """Every fetch of a URL someone else named (cards, documents): the SSRF rules."""
    fetcher = SafeFetcher(
        AddressPolicy.from_cidrs(settings.ssrf_allow_cidrs, allow_loopback=settings.dev),
        FetchLimits(
            timeout_seconds=settings.fetch_timeout_seconds,
            max_bytes=settings.fetch_max_bytes,
            max_redirects=settings.fetch_max_redirects,
        ),
    )
    stack.push_async_callback(fetcher.aclose)
    return fetcher


def _health_checker(
    settings: Settings, store: SqlAgentStore, fetcher: SafeFetcher
) -> HealthChecker:
    return HealthChecker(
        store,
        fetcher,
        interval_seconds=settings.health_check_interval_seconds,
        failure_threshold=settings.health_failure_threshold,
        success_threshold=settings.health_success_threshold,
        concurrency=settings.health_check_concurrency,
    )


def _delegations(
    settings: Settings,
    engine: AsyncEngine,
    store: SqlAgentStore,
    minter: DelegatedTokenMinter,
    audit_log: AuditLog,
    stack: contextlib.AsyncExitStack,
) -> Delegations:
    """Decide and mint: the policy, its rate limits and coordination rules."""
    coordination_store: Store = (
        RedisStore(settings.redis_url) if settings.redis_url else SqlStore(engine)
    )
    stack.push_async_callback(coordination_store.aclose)
    return Delegations(
        store,
        PolicySource(
            settings.policy_file,
            functools.partial(rate_limits_problem, settings.workers, settings.redis_url),
        ),
        minter,
        audit_log,
        max_depth=settings.max_delegation_depth,
        rate_limits=RateLimits(settings.redis_url),
        coordination=Coordination(coordination_store, audit_log),
    )


def _limit_by_keys(delegations: Delegations, api_keys: ApiKeys) -> None:
    """A call made with an API key: that key's rate, whether it is still usable, its budget."""
    delegations.key_limits = lambda actor: key_limits(
        actor, api_keys.rate_of(actor.removeprefix(ACTOR_PREFIX))
    )
    delegations.key_unusable = lambda actor: api_keys.unusable(actor.removeprefix(ACTOR_PREFIX))
    delegations.key_spend = lambda actor, target, action: api_keys.spend_on(
        actor.removeprefix(ACTOR_PREFIX), delegations.policy.current.prices, target, action
    )


def _verifier(
    settings: Settings, keys: KeyStore, stack: contextlib.AsyncExitStack
) -> TokenVerifier:
    """The gateway itself as an issuer, then every issuer the operator trusts."""
    jwks_client = httpx.AsyncClient(timeout=5.0, trust_env=False, verify=client_tls())
    stack.push_async_callback(jwks_client.aclose)
    return TokenVerifier(
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


def _resilience(settings: Settings) -> Resilience:
    return Resilience(
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


# An inline push config waits for its task at most as long as its call can
# run; a day past that (and at least a day) it can only be a leftover.
PENDING_PUSH_SWEEP_SECONDS = 600.0
PENDING_PUSH_MIN_AGE = timedelta(days=1)
LONGEST_CALL_CAP = timedelta(days=30)  # whatever the settings say (they allow "forever")
LONGEST_WAIT = timedelta(days=30)  # a flow's wait: its timeout_seconds' bound


async def _sweep_pending_push(push: PushRelays, settings: Settings) -> None:
    longest = max(settings.stream_max_seconds, settings.upstream_timeout_seconds)
    longest_call = timedelta(seconds=min(longest, LONGEST_CALL_CAP.total_seconds()))
    swept = await push.sweep_pending(datetime.now(UTC) - longest_call - PENDING_PUSH_MIN_AGE)
    if swept:
        logger.info("removed %d inline push configs that never got a task", swept)
    # A wait lasts at most 30 days (`gateway.flows.wait_definition.Wait`): a watch
    # older is a leftover.
    left = await push.sweep_watches(datetime.now(UTC) - LONGEST_WAIT - PENDING_PUSH_MIN_AGE)
    if left:
        logger.info("removed %d watches of waits that ended without removing them", left)


async def _canonical_coordination_keys(delegations: Delegations, engine: AsyncEngine) -> None:
    """State kept before entity keys were compared in one form moves to its
    canonical key (`Coordination.canonicalise`), on every start: cheap when
    there is nothing to move, and a replica started on an older state finds
    it. A store that cannot be reached now is reported, not fatal: `/readyz`
    says so, and the next start tries again."""
    rules = delegations.policy.current.coordination
    if not rules or delegations.coordination is None:
        return
    try:
        moved = await delegations.coordination.canonicalise(rules)
        moved += await canonicalise_waiting(engine, rules.canonical)
    except Exception as exc:
        logger.warning("coordination state not re-keyed to canonical keys: %s", exc)
        return
    if moved:
        logger.info("coordination state: %d rows moved to their canonical keys", moved)
