"""Background health checks of registered agents, with hysteresis.

An agent turns unhealthy only after ``failure_threshold`` failed checks in a
row and healthy again only after ``success_threshold`` good ones, so one lost
packet does not flap its status. Each check first takes a lease on the agent
row (`SqlAgentStore.claim_health_check`), so one agent is never checked twice
at once, by this process or by another replica.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from registry.cards import CardInvalid, parse_card
from registry.fetch import FetchError, SafeFetcher
from registry.models import HealthStatus
from registry.store import HealthTarget, SqlAgentStore

logger = logging.getLogger(__name__)
security = logging.getLogger("switchboard.security")


@dataclass(frozen=True)
class HealthState:
    status: HealthStatus
    failures: int
    successes: int


def next_state(
    state: HealthState, ok: bool, *, failure_threshold: int, success_threshold: int
) -> HealthState:
    """The pure hysteresis rule."""
    if ok:
        successes = state.successes + 1
        healthy = state.status is HealthStatus.HEALTHY or successes >= success_threshold
        # An agent never seen before is healthy on its first good answer.
        if state.status is HealthStatus.UNKNOWN:
            healthy = True
        return HealthState(HealthStatus.HEALTHY if healthy else state.status, 0, successes)
    failures = state.failures + 1
    unhealthy = state.status is HealthStatus.UNHEALTHY or failures >= failure_threshold
    return HealthState(HealthStatus.UNHEALTHY if unhealthy else state.status, failures, 0)


class HealthChecker:
    def __init__(
        self,
        store: SqlAgentStore,
        fetcher: SafeFetcher,
        *,
        interval_seconds: float,
        failure_threshold: int,
        success_threshold: int,
        concurrency: int,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self.interval_seconds = interval_seconds
        self._failure_threshold = failure_threshold
        self._success_threshold = success_threshold
        self._semaphore = asyncio.Semaphore(concurrency)
        # A lease outlives the longest check so a crashed checker frees it.
        self._lease = timedelta(seconds=max(60.0, fetcher.limits.timeout_seconds * 4))

    async def check_all(self) -> None:
        """Check each agent not checked in the last interval (by this replica
        or another): a restart, or a second replica, does not probe every
        agent again at once -- with many agents that round would compete with
        requests for the database for a long time (`bench.scale`)."""
        # A little short of the interval, so that an agent checked in the
        # previous round (which took some time) is due again in this one.
        since = datetime.now(UTC) - timedelta(seconds=self.interval_seconds * 0.9)
        targets = await self._store.health_targets(checked_before=since)
        await asyncio.gather(*(self.check(t) for t in targets))

    async def check(self, target: HealthTarget) -> HealthStatus | None:
        async with self._semaphore:
            claim = await self._store.claim_health_state(target.agent_id, self._lease)
            if claim is None:
                return None  # someone else is checking it right now (or it is gone)
            ok, detail = await self._probe(target)
            current = HealthState(claim.status, claim.failures, claim.successes)
            state = next_state(
                current,
                ok,
                failure_threshold=self._failure_threshold,
                success_threshold=self._success_threshold,
            )
            before = current.status
            registered = await self._store.record_health(
                target.agent_id,
                state.status,
                state.failures,
                state.successes,
                detail,
                before,
                claimed=claim.until,
            )
            if not registered:
                return None  # deleted meanwhile, or claimed by another check past its lease
            if before is HealthStatus.UNKNOWN and state.status is HealthStatus.HEALTHY:
                # An agent's first good answer is news, not a warning.
                logger.info("agent %s health: unknown -> healthy", target.agent_id)
            elif state.status is not before:
                security.warning(
                    "agent %s health: %s -> %s (%s)",
                    target.agent_id,
                    before.value,
                    state.status.value,
                    detail or "ok",
                )
            return state.status

    async def _probe(self, target: HealthTarget) -> tuple[bool, str | None]:
        """URL-registered agents: the card must still be served and valid.
        Inline ones: their first interface must answer HTTP at all (< 500)."""
        url = target.card_url or target.interface_url
        if url is None:
            return False, "no URL to probe"
        try:
            document = await self._fetcher.get(url)
        except FetchError as exc:
            return False, str(exc)
        if target.card_url is None:
            return (
                document.status < 500,
                None if document.status < 500 else f"HTTP {document.status}",
            )
        if document.status != 200:
            return False, f"card endpoint answered HTTP {document.status}"
        try:
            parse_card(document.json())
        except (CardInvalid, FetchError) as exc:
            return False, f"card endpoint serves an invalid card: {exc}"
        return True, None
