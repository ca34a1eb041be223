"""Prometheus metrics for the gateway (`/metrics`, prometheus-client).

Calls are counted where every door already reports them: the audit log. Each
decision the pipeline records (an A2A operation, an MCP tool call, a token
exchange, an approval) passes through `GatewayMetrics.observe` before it is
buffered, so the counts and the audit always agree and no door needs code of
its own. Labels are bounded by what is registered: the event (door and
operation), the target agent or MCP server, the skill or tool, the decision
and the outcome. Never a subject, a token or an argument.

State that is not an event (breakers, approvals waiting, tasks by state, the
database pool, the core check's misses) is read by `refresh()`, which a
background job runs every `metrics_refresh_seconds`, so a scrape never waits
on the database (a scrape reads the core check's misses too: no I/O).

Each process keeps its own registry. Under `serve --workers` the workers
share Prometheus' multiprocess directory (`MULTIPROCESS_ENV`, set by the
supervisor before it spawns them): a scrape answered by any worker, or by
the supervisor on `metrics_port`, sums every worker's counters and
histograms, those of workers that have died included (a count never goes
back); the state gauges read from the database show the latest reading, the
breakers whether any live worker has one open, the pool the live workers'
total.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import core_check
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.breaker import Breakers
from gateway.observability.operation_metrics import OperationMetrics
from gateway.storage.flow_tables import flow_runs
from gateway.storage.periodic import Periodic
from gateway.storage.tables import a2a_tasks, approvals

logger = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
# prometheus-client's own variable: read when it is imported.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


class GatewayMetrics:
    def __init__(self, engine: AsyncEngine, breakers: Breakers) -> None:
        self._engine = engine
        self._breakers = breakers
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes,
        # process_open_fds, process_start_time_seconds, ... (from /proc).
        ProcessCollector(registry=self.registry)
        # MCP's conventional durations and the latency per upstream target.
        self.operations = OperationMetrics(self.registry)
        self._count_calls()
        self._gauge_state()
        self._count_flows_and_exchanges()
        self._gauge_jobs()
        self._count_coordination()
        self._count_requests()
        self._core_check_counter()
        self._shown: dict[str, set[tuple[str, ...]]] = {
            "breakers": set(),
            "tasks": set(),
            "flow_runs": set(),
        }

    def _count_calls(self) -> None:
        """The audit log's events, as `observe` sees them."""
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

    def _gauge_state(self) -> None:
        """State that is not an event, read by `refresh()`."""
        self.breakers = Gauge(
            "switchboard_breaker_open",
            "1 while an upstream's circuit breaker is open or half-open",
            ["target", "state"],
            registry=self.registry,
            multiprocess_mode="livemax",  # open in any live worker
        )
        self.approvals_pending = Gauge(
            "switchboard_approvals_pending",
            "Calls waiting for a human's approval",
            registry=self.registry,
            multiprocess_mode="mostrecent",  # every worker reads the same database
        )
        self.tasks = Gauge(
            "switchboard_tasks",
            "Tasks the gateway records, by A2A state",
            ["state"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.pool = Gauge(
            "switchboard_db_pool_connections",
            "Database connections of this process, by use",
            ["use"],
            registry=self.registry,
            multiprocess_mode="livesum",  # the replica's total
        )
        self.embedding_pending = Gauge(
            "switchboard_tool_search_embedding_pending",
            "Tools tool search's semantic leg has still to embed in this process "
            "(a caller with one of them gets lexical answers meanwhile)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        # Read at `refresh` (`gateway.app` sets it when the leg is on).
        self.semantic_pending: Callable[[], int] | None = None

    def _count_flows_and_exchanges(self) -> None:
        # What operators watch, beside the calls (issue 32.11; docs/operations.md).
        self.flow_runs = Counter(
            "switchboard_flow_runs",
            "Flow runs started, and ended by state (completed, failed, canceled, rejected)",
            ["flow", "state"],
            registry=self.registry,
        )
        self.flow_runs_active = Gauge(
            "switchboard_flow_runs_active",
            "Flow runs not ended, by state (working, input_required: waiting for a human "
            "or an event)",
            ["state"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.flow_steps = Histogram(
            "switchboard_flow_step_duration_seconds",
            "A flow's call steps, from start to outcome (retries and fallback included), by state",
            ["state"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.token_exchanges = Counter(
            "switchboard_token_exchanges",
            "RFC 8693 token exchanges at /oauth/token, by target and outcome",
            ["target", "outcome"],
            registry=self.registry,
        )

    def _gauge_jobs(self) -> None:
        # The periodic jobs (`gateway.storage.periodic`): a job failing for
        # long (retention, lease renewal, health checks) is silent otherwise.
        self.job_failing = Gauge(
            "switchboard_job_failing",
            "1 while a periodic job's passes fail (retention, sweeps, health checks, leases)",
            ["job"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.job_last_success = Gauge(
            "switchboard_job_last_success_timestamp_seconds",
            "When a periodic job's last pass ended well (Unix time)",
            ["job"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.jobs: list[Periodic] = []  # those shown (`watch`); tests read their passes

    def _count_coordination(self) -> None:
        """The calls coordination rules refused or deferred (from the audit's events)."""
        self.coordination = Counter(
            "switchboard_coordination_refusals",
            "Calls a coordination rule refused (a hold, cooldown, lease or budget: "
            "coordination) or held back until it allows them (deferred), by target",
            ["target", "outcome"],
            registry=self.registry,
        )

    def _count_requests(self) -> None:
        """HTTP requests, /mcp methods and the audit records exported."""
        self.http = Counter(
            "switchboard_http_requests",
            "HTTP requests by route template (never a raw path), method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.mcp = Counter(
            "switchboard_mcp_requests",
            "JSON-RPC requests to the gateway's /mcp endpoint, by MCP method",
            ["method"],
            registry=self.registry,
        )
        self.audit_export = Counter(
            "switchboard_audit_export_records",
            "Audit records the export to a SIEM delivered to a sink (delivered) or kept "
            "as dead letters (dead_letter), by sink",
            ["sink", "outcome"],
            registry=self.registry,
        )

    def _core_check_counter(self) -> None:
        # `adapters.core_check` counts its misses (it may not import the
        # gateway); each refresh and scrape adds those since the last look.
        self.core_check_misses = Counter(
            "switchboard_core_check_misses",
            "Upstream sends and call records outside delegate() (SWITCHBOARD_CORE_CHECK: "
            "warn logs each site once, this counts every miss), by site in the code",
            ["site"],
            registry=self.registry,
        )
        self._core_check_seen = core_check.misses()  # before this gateway: not its

    def observe(self, event: AuditEvent) -> None:
        self.calls.labels(
            event.event,
            event.target or "",
            event.action or "",
            event.decision,
            event.outcome,
        ).inc()
        self.duration.labels(event.event, event.decision).observe(event.latency_ms / 1000.0)
        if event.event == "flow.start" and event.decision == "allow":
            self.flow_runs.labels(event.target or "", "started").inc()
        elif event.event == "flow.run":
            self.flow_runs.labels(event.target or "", event.outcome).inc()
        elif event.event == "token_exchange":
            self.token_exchanges.labels(event.target or "", event.outcome).inc()
        if event.outcome in ("coordination", "deferred"):
            self.coordination.labels(event.target or "", event.outcome).inc()

    def observe_step(self, state: str, seconds: float) -> None:
        """A flow's call step ended (`FlowRuntime.step_listeners`)."""
        self.flow_steps.labels(state).observe(seconds)

    def observe_http(self, route: str, method: str, status: int, mcp_method: str | None) -> None:
        """One HTTP request (`gateway.observability.http_metrics`)."""
        self.http.labels(route, method, str(status)).inc()
        if mcp_method is not None:
            self.mcp.labels(mcp_method).inc()

    def count_core_check_misses(self) -> None:
        """The core check's misses since the last look, by site."""
        for site, count in core_check.misses().items():
            if (new := count - self._core_check_seen.get(site, 0)) > 0:
                self.core_check_misses.labels(site).inc(new)
                self._core_check_seen[site] = count

    def watch(self, jobs: Iterable[Periodic]) -> None:
        """Show these periodic jobs' health (`switchboard_job_*`)."""
        self.jobs = list(jobs)

    async def refresh(self) -> None:
        """Read the state gauges (jobs, breakers, pool, approvals, tasks, runs).
        With the database away, those read from it keep their last values
        (and /readyz says why); the job's failure is logged once."""
        self.count_core_check_misses()
        if self.semantic_pending is not None:
            self.embedding_pending.set(self.semantic_pending())
        for job in self.jobs:
            self.job_failing.labels(job.name).set(0 if job.state.failing is None else 1)
            if job.state.last_ok is not None:
                self.job_last_success.labels(job.name).set(job.state.last_ok)
        self._replace(
            "breakers",
            self.breakers,
            {
                (target, state.status.value): 1
                for target, state in self._breakers.states().items()
                if state.status.value != "closed"
            },
        )
        pool = self._engine.pool
        checked_out = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        if callable(checked_out) and callable(size):
            self.pool.labels("in_use").set(checked_out())
            self.pool.labels("size").set(size())
        # One statement for the three counts (an idle gateway's reads: docs/performance.md).
        counts = union_all(
            select(literal_column("'approvals'"), literal_column("'pending'"), func.count()).where(
                approvals.c.state == "pending"
            ),
            select(literal_column("'tasks'"), a2a_tasks.c.state, func.count()).group_by(
                a2a_tasks.c.state
            ),
            select(literal_column("'flow_runs'"), flow_runs.c.state, func.count())
            .where(flow_runs.c.finished_at.is_(None))
            .group_by(flow_runs.c.state),
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(counts)).all()
        by: dict[str, dict[tuple[str, ...], float]] = {"tasks": {}, "flow_runs": {}}
        pending = 0
        for kind, state, count in rows:
            if kind == "approvals":
                pending = count or 0
            else:
                by[kind][(str(state),)] = count
        self.approvals_pending.set(pending)
        self._replace("tasks", self.tasks, by["tasks"])
        self._replace("flow_runs", self.flow_runs_active, by["flow_runs"])

    def _replace(self, name: str, gauge: Gauge, values: dict[tuple[str, ...], float]) -> None:
        """Show exactly ``values``. A series no longer there is removed; with
        workers, set to 0 instead (its last value stays in the worker's file)."""
        for gone in self._shown[name] - values.keys():
            if os.environ.get(MULTIPROCESS_ENV):
                gauge.labels(*gone).set(0)
            else:
                gauge.remove(*gone)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        self._shown[name] = set(values)

    def render(self) -> bytes:
        self.count_core_check_misses()  # this process's, up to the scrape
        if os.environ.get(MULTIPROCESS_ENV):
            return generate_latest(aggregate_registry())
        return generate_latest(self.registry)


class _Workers(Collector):
    """Every worker's metrics from the multiprocess directory, without the
    live-only gauges of workers that are gone (uvicorn's supervisor has no
    hook to say so when one dies: a file whose process is gone is one)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> Iterable[Metric]:
        for entry in os.listdir(self._path):
            match = _LIVE_FILE.match(entry)
            if match and not _alive(int(match.group(1))):
                multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                    int(match.group(1)), self._path
                )
        collector = multiprocess.MultiProcessCollector(None, self._path)  # type: ignore[no-untyped-call]
        found: Iterable[Metric] = collector.collect()  # type: ignore[no-untyped-call]
        return found


def aggregate_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_Workers(os.environ[MULTIPROCESS_ENV]))
    # The process_* series of the process answering (a worker, or the
    # supervisor on `metrics_port`): they cannot be summed across processes.
    ProcessCollector(registry=registry)
    return registry


def serve_aggregate(port: int, host: str, stack: contextlib.ExitStack) -> None:
    """`metrics_port` in the supervisor of `serve --workers`: every worker's sum."""
    server, thread = start_http_server(port, addr=host, registry=aggregate_registry())
    stack.callback(thread.join, 5)
    stack.callback(server.server_close)
    stack.callback(server.shutdown)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
