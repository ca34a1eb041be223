"""Observability's start-up: metrics and the security log fed by the audit
log, the metrics' gauges refreshed by a job, and (with `metrics_port`) their
own HTTP server."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from prometheus_client import start_http_server

from gateway.delegation.startup import DelegationCore, Job
from gateway.observability.logs import log_decision
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.storage.periodic import Periodic


@dataclass(frozen=True)
class ObservabilityParts:
    metrics: GatewayMetrics
    refresh_seconds: float

    def jobs(self) -> list[Job]:
        return [Periodic("metrics-refresh", self.refresh_seconds, self.metrics.refresh)]


def start(
    settings: Settings,
    core: DelegationCore,
    stack: contextlib.ExitStack | contextlib.AsyncExitStack,
) -> ObservabilityParts:
    metrics = GatewayMetrics(core.engine, core.resilience.breakers)
    core.audit.listeners.append(metrics.observe)
    core.audit.listeners.append(log_decision)
    core.resilience.upstream_listeners.append(metrics.operations.observe_client)
    if settings.metrics_port is not None:
        server, thread = start_http_server(
            settings.metrics_port, addr=settings.host, registry=metrics.registry
        )
        # At exit, in this order: stop serving, close the socket, join.
        stack.callback(thread.join, 5)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
    return ObservabilityParts(metrics, settings.metrics_refresh_seconds)
