"""Prometheus metrics for the gateway (`/metrics`, prometheus-client).

Calls are counted where every door already reports them: the audit log. Each
decision the pipeline records (an A2A operation, an MCP tool call, a token
exchange, an approval) passes through `GatewayMetrics.observe` before it is
buffered, so the counts and the audit always agree and no door needs code of
its own. Labels are bounded by what is registered: the event (door and
operation), the target agent or MCP server, the skill or tool, the decision
and the outcome. Never a subject, a token or an argument.

State that is not an event (breakers, approvals waiting, tasks by state, the
database pool) is read by `refresh()`, which a background job runs every
`metrics_refresh_seconds`, so a scrape never waits on the database.

Each process keeps its own registry. With several worker processes per
replica (not yet an option of `switchboard serve`), Prometheus' multiprocess
mode will be needed; until then one process is one scrape target.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit import AuditEvent
from gateway.delegation.breaker import Breakers
from gateway.storage.tables import a2a_tasks, approvals

logger = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)


class GatewayMetrics:
    def __init__(self, engine: AsyncEngine, breakers: Breakers) -> None:
        self._engine = engine
        self._breakers = breakers
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "switchboard_calls",
            "Decisions recorded in the audit log, by event (door and operation), target, "
            "skill or tool, decision and outcome",
            ["event", "target", "action", "decision", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "switchboard_call_duration_seconds",
            "Time from admission to the recorded outcome, upstream call included",
            ["event", "decision"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.breakers = Gauge(
            "switchboard_breaker_open",
            "1 while an upstream's circuit breaker is open or half-open",
            ["target", "state"],
            registry=self.registry,
        )
        self.approvals_pending = Gauge(
            "switchboard_approvals_pending",
            "Calls waiting for a human's approval",
            registry=self.registry,
        )
        self.tasks = Gauge(
            "switchboard_tasks",
            "Tasks the gateway records, by A2A state",
            ["state"],
            registry=self.registry,
        )
        self.pool = Gauge(
            "switchboard_db_pool_connections",
            "Database connections of this process, by use",
            ["use"],
            registry=self.registry,
        )

    def observe(self, event: AuditEvent) -> None:
        self.calls.labels(
            event.event,
            event.target or "",
            event.action or "",
            event.decision,
            event.outcome,
        ).inc()
        self.duration.labels(event.event, event.decision).observe(event.latency_ms / 1000.0)

    async def refresh(self) -> None:
        """Read the state gauges (breakers, approvals, tasks, pool)."""
        self.breakers.clear()
        for target, state in self._breakers.states().items():
            if state.status.value != "closed":
                self.breakers.labels(target, state.status.value).set(1)
        pool = self._engine.pool
        checked_out = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        if callable(checked_out) and callable(size):
            self.pool.labels("in_use").set(checked_out())
            self.pool.labels("size").set(size())
        try:
            async with self._engine.connect() as conn:
                pending = await conn.execute(
                    select(func.count()).where(approvals.c.state == "pending")
                )
                self.approvals_pending.set(pending.scalar() or 0)
                rows = await conn.execute(
                    select(a2a_tasks.c.state, func.count()).group_by(a2a_tasks.c.state)
                )
                self.tasks.clear()
                for state, count in rows:
                    self.tasks.labels(state).set(count)
        except (SQLAlchemyError, OSError) as exc:
            # The database is down: the gauges keep their last values, and
            # /readyz says why.
            logger.warning("metrics: database gauges not refreshed: %s", type(exc).__name__)

    async def run_forever(self, every_seconds: float) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(every_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
