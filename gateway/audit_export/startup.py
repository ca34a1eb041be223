"""The audit export's start-up: the configured sinks, this process's streams
to them, and one periodic job per sink."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from gateway.audit_export.exporter import AuditExporter, Counted, ExportLimits
from gateway.audit_export.sinks import OtlpLogSink, Sink, WebhookSink
from gateway.audit_export.streams import SqlExportStreams
from gateway.delegation.startup import DelegationCore, Job
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.storage.periodic import Periodic
from gateway.storage.replicas import ReplicaDirectory


@dataclass(frozen=True)
class AuditExportParts:
    streams: SqlExportStreams
    interval_seconds: float
    exporters: dict[str, AuditExporter] = field(default_factory=dict)

    def jobs(self) -> list[Job]:
        return [
            Periodic(f"audit-export-{name}", self.interval_seconds, exporter.run_pass)
            for name, exporter in self.exporters.items()
        ]


def sinks_of(settings: Settings) -> list[Sink]:
    found: list[Sink] = []
    timeout = settings.audit_export_timeout_seconds
    secret = settings.audit_export_webhook_secret
    if settings.audit_export_webhook_url is not None and secret is not None:
        found.append(
            WebhookSink(settings.audit_export_webhook_url, secret.get_secret_value(), timeout)
        )
    if settings.audit_export_otlp_endpoint is not None:
        found.append(
            OtlpLogSink(
                settings.audit_export_otlp_endpoint,
                {k: v.get_secret_value() for k, v in settings.audit_export_otlp_headers.items()},
                timeout,
            )
        )
    return found


def _counter(metrics: GatewayMetrics | None) -> Counted | None:
    if metrics is None:
        return None
    counter = metrics.audit_export
    return lambda sink, outcome, records: counter.labels(sink, outcome).inc(records)


async def start(
    settings: Settings,
    core: DelegationCore,
    replicas: ReplicaDirectory,
    stack: contextlib.AsyncExitStack,
    metrics: GatewayMetrics | None = None,
) -> AuditExportParts:
    streams = SqlExportStreams(core.engine)
    limits = ExportLimits(
        batch_size=settings.audit_export_batch_size,
        max_attempts=settings.audit_export_max_attempts,
        max_delay_seconds=settings.audit_export_max_delay_seconds,
        # A delivery ends well before the pass.
        pass_budget_seconds=max(20.0, 2 * settings.audit_export_timeout_seconds),
        delivery_seconds=settings.audit_export_timeout_seconds,
    )
    parts = AuditExportParts(streams, settings.audit_export_interval_seconds)
    writer = core.audit.writer
    for sink in sinks_of(settings):
        stack.push_async_callback(sink.aclose)
        # Before this process's first record can be lost to no stream.
        await streams.ensure(sink.name, writer, replicas.id)
        parts.exporters[sink.name] = AuditExporter(
            streams, sink, writer, limits, counted=_counter(metrics), replicas=replicas
        )
    return parts
