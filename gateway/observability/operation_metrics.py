"""Durations in the names OpenTelemetry's MCP conventions give them, and the
latency of each upstream target.

- `mcp_server_operation_duration_seconds`: each message `/mcp` received,
  from receipt to the answer (`gateway.mcp.server_spans`);
- `mcp_client_operation_duration_seconds`: each request the gateway sent a
  federated MCP server, from sending to the answer (`adapters.operations`);
- `switchboard_upstream_duration_seconds`: each attempt at any upstream --
  an agent or an MCP server -- by target.

The first two are mcp.md's `mcp.server.operation.duration` and
`mcp.client.operation.duration` (`adapters.semconv`), as OpenTelemetry's
Prometheus compatibility names them (dots to underscores, the unit as a
suffix), with its advised buckets and these of its attributes:
`mcp.method.name`, `gen_ai.tool.name`, `error.type`.

Every label is bounded: a method is one of MCP's or ``other``; a tool is
named only once it ran (a name a caller made up is no series) and on the
client side only a registered server's tools are called; an error is a
JSON-RPC code in the reserved range, an exception's class, ``tool_error``,
``timeout`` or ``_OTHER``; a target is a registered agent or server (only
those are called), and past `MAX_TARGETS` of them ``_other``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from adapters import semconv
from adapters.operations import Operation
from gateway.observability.mcp_methods import MCP_METHODS

MAX_TARGETS = 1000
OTHER_TARGET = "_other"
_JSONRPC_CODES = range(-32768, -31999)  # JSON-RPC 2.0 section 5.1's reserved range
_MAX_ERROR = 64
_LABELS = [
    semconv.label(semconv.MCP_METHOD_NAME),
    semconv.label(semconv.GEN_AI_TOOL_NAME),
    semconv.label(semconv.ERROR_TYPE),
]


class OperationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.server = Histogram(
            semconv.prometheus_name(semconv.MCP_SERVER_OPERATION_DURATION),
            "MCP request or notification duration as observed on the receiver (/mcp), "
            "by method, tool and error (OpenTelemetry MCP conventions)",
            _LABELS,
            buckets=semconv.DURATION_BUCKETS,
            registry=registry,
        )
        self.client = Histogram(
            semconv.prometheus_name(semconv.MCP_CLIENT_OPERATION_DURATION),
            "MCP request duration as observed on the sender (the gateway, calling a "
            "federated server), by method, tool and error (OpenTelemetry MCP conventions)",
            _LABELS,
            buckets=semconv.DURATION_BUCKETS,
            registry=registry,
        )
        self.upstream = Histogram(
            "switchboard_upstream_duration_seconds",
            "Each attempt at an upstream (an agent or an MCP server), by target, its kind "
            "and outcome (ok, error)",
            ["target", "kind", "outcome"],
            buckets=semconv.DURATION_BUCKETS,
            registry=registry,
        )
        self._targets: set[str] = set()
        # Each series' child, found once: `labels()` checks and locks on
        # every call, a few µs on every upstream attempt.
        self._children: dict[tuple[Histogram, tuple[str, ...]], Histogram] = {}

    def observe_server(
        self, method: str, tool: str | None, error: str | None, seconds: float
    ) -> None:
        """One message `/mcp` received (`gateway.mcp.server_spans`)."""
        self._child(self.server, (_method(method), tool or "", _error(error))).observe(seconds)

    def observe_client(self, operation: Operation, seconds: float, error: str | None) -> None:
        """One upstream attempt (`Resilience.upstream_listeners`)."""
        outcome = "ok" if error is None else "error"
        target = self._target(operation.target)
        self._child(self.upstream, (target, operation.kind, outcome)).observe(seconds)
        if operation.kind == "mcp_server":
            tool = semconv.usable_name(operation.name) if operation.method == "tools/call" else None
            labels = (_method(operation.method), tool or "", _error(error))
            self._child(self.client, labels).observe(seconds)

    def _child(self, histogram: Histogram, labels: tuple[str, ...]) -> Histogram:
        key = (histogram, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = histogram.labels(*labels)
        return child

    def _target(self, target: str) -> str:
        if target in self._targets:
            return target
        if len(self._targets) >= MAX_TARGETS:
            return OTHER_TARGET
        self._targets.add(target)
        return target


def _method(method: str) -> str:
    return method if method in MCP_METHODS else "other"


def _error(error: str | None) -> str:
    if error is None:
        return ""
    if error.lstrip("-").isdigit():
        return error if int(error) in _JSONRPC_CODES else semconv.OTHER_ERROR
    return error if len(error) <= _MAX_ERROR else semconv.OTHER_ERROR
