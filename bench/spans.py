"""What tracing costs the code paths it instruments, off and on, in one run:
the three spans of a delegation (decide, mint, record) around no work, with
tracing off (the default: a shared no-op context manager) and on (the SDK's
tracer, spans batched to an exporter that drops them), next to the same loop
without any span.

    python -m bench.spans
    python -m bench.spans --calls 200000

A second table does the same for what wraps each upstream attempt
(`adapters.operations.traced`: the CLIENT span in the MCP conventions' names
and the duration the metrics hear), around an attempt that does nothing:
without it, with tracing off and the metrics listening (the default), and
with tracing on.

The end-to-end figure (a whole SendMessage through a gateway exporting to an
OTLP endpoint) is `python -m bench.a2a_gateway --tracing`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

from adapters import spans
from adapters.operations import Operation, traced
from gateway.observability.operation_metrics import OperationMetrics

NAMES = ("switchboard.decide", "switchboard.mint", "switchboard.record")


class _Drop(SpanExporter):
    def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _per_call(calls: int, *, instrumented: bool) -> float:
    """Median µs per call (three spans) over 5 batches."""
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls // 5):
            if not instrumented:
                for _name in NAMES:
                    pass
                continue
            for name in NAMES:
                with spans.span(name) as span:
                    if span is not None:
                        span.set_attribute("switchboard.target", "agent")
        batches.append((time.perf_counter() - started) / (calls // 5) * 1e6)
    return statistics.median(batches)


def _per_attempt(calls: int, how: str) -> float:
    """Median µs per upstream attempt over 5 batches."""

    async def attempt() -> None:
        return None

    listeners = [OperationMetrics(CollectorRegistry()).observe_client]
    operation = Operation.mcp("alpha", "http", "tools/call", "add")
    run = attempt if how == "bare" else traced(operation, attempt, listeners)

    async def batch() -> float:
        started = time.perf_counter()
        for _ in range(calls // 5):
            await run()
        return (time.perf_counter() - started) / (calls // 5) * 1e6

    return statistics.median(asyncio.run(batch()) for _ in range(5))


def operations(calls: int) -> None:
    spans.disable()
    rows = [("no wrapper", _per_attempt(calls, "bare"))]
    rows.append(("tracing off", _per_attempt(calls, "traced")))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    spans.enable(provider.get_tracer("bench"))
    rows.append(("tracing on", _per_attempt(calls, "traced")))
    spans.disable()
    provider.shutdown()
    print(f"upstream attempts (adapters.operations.traced, metrics listening), {calls} calls")
    print(f"{'':12} {'µs/call':>9} {'added':>9}")
    for name, micros in rows:
        print(f"{name:12} {micros:9.2f} {micros - rows[0][1]:9.2f}")


def main(calls: int) -> None:
    rows = [("no spans", _per_call(calls, instrumented=False))]
    spans.disable()
    rows.append(("tracing off", _per_call(calls, instrumented=True)))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    spans.enable(provider.get_tracer("bench"))
    rows.append(("tracing on", _per_call(calls, instrumented=True)))
    spans.disable()
    provider.shutdown()
    print(f"spans: three per call, {calls} calls, load average {os.getloadavg()[0]:.2f}")
    print(f"{'':12} {'µs/call':>9} {'added':>9}")
    for name, micros in rows:
        print(f"{name:12} {micros:9.2f} {micros - rows[0][1]:9.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    arguments = parser.parse_args()
    main(arguments.calls)
    operations(arguments.calls)
