"""gateway.observability.operation_metrics: the conventional histograms'
labels stay bounded whatever the calls are; the SDK server's own span
middleware is the one the gateway's replaces."""

from __future__ import annotations

import pytest
from mcp.server import Server
from prometheus_client import CollectorRegistry

from adapters.operations import Operation
from gateway.mcp.gateway_server import GatewayServer
from gateway.mcp.server_spans import McpServerSpans, without_sdk_spans
from gateway.observability import operation_metrics
from gateway.observability.operation_metrics import OperationMetrics


def _series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


def test_labels_are_bounded() -> None:
    registry = CollectorRegistry()
    metrics = OperationMetrics(registry)
    metrics.observe_server("tools/call", "add", None, 0.01)
    metrics.observe_server("made/up", None, "-32601", 0.01)
    metrics.observe_server("tools/call", None, "12345", 0.01)  # outside JSON-RPC's range
    metrics.observe_server("tools/call", None, "E" * 65, 0.01)
    labels = _series(registry, "mcp_server_operation_duration_seconds_count")
    assert {"mcp_method_name": "tools/call", "gen_ai_tool_name": "add", "error_type": ""} in labels
    assert {"mcp_method_name": "other", "gen_ai_tool_name": "", "error_type": "-32601"} in labels
    others = [s for s in labels if s["error_type"] == "_OTHER"]
    assert len(others) == 1  # both odd errors in one series


def test_targets_past_the_cap_share_one_label(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    metrics = OperationMetrics(registry)
    monkeypatch.setattr(operation_metrics, "MAX_TARGETS", 2)
    for target in ("a", "b", "c", "d", "a"):
        metrics.observe_client(Operation.mcp(target, "http", "tools/call", "t"), 0.1, None)
    targets = {
        s["target"] for s in _series(registry, "switchboard_upstream_duration_seconds_count")
    }
    assert targets == {"a", "b", "_other"}


def test_an_agent_call_is_no_mcp_client_operation() -> None:
    registry = CollectorRegistry()
    metrics = OperationMetrics(registry)
    metrics.observe_client(Operation.agent("support", {}, "SendMessage"), 0.1, "timeout")
    assert _series(registry, "mcp_client_operation_duration_seconds_count") == []
    [labels] = _series(registry, "switchboard_upstream_duration_seconds_count")
    assert labels == {"target": "support", "kind": "agent", "outcome": "error"}


def test_the_sdk_servers_span_middleware_is_known_and_replaced() -> None:
    server: Server[object] = Server("probe")
    names = [type(m).__name__ for m in server.middleware]
    # If the SDK renames its middleware, this fails: then `_SDK_MIDDLEWARE` follows.
    assert "OpenTelemetryMiddleware" in names
    assert without_sdk_spans(server.middleware) == [
        m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"
    ]
    assert McpServerSpans.__name__ not in names
    ours = [type(m).__name__ for m in GatewayServer("probe").middleware]
    assert ours[0] == McpServerSpans.__name__ and "OpenTelemetryMiddleware" not in ours
