"""Spans and metrics in OpenTelemetry's GenAI conventions (`adapters.semconv`):
an MCP `tools/call` through the gateway's `/mcp` to a real upstream MCP
server over HTTP, and an A2A `SendMessage` to a real agent, exported to a
real OTLP receiver (`tests.support.otlp_receiver`) and read back.

What is checked: the MCP SERVER span (`tools/call {tool}`) continues the
trace the client put in ``params._meta`` -- not the HTTP header's, which it
links -- with mcp.md's attributes; the MCP CLIENT span to the upstream hangs
under it, and the upstream received, in its own ``params._meta`` and in its
HTTP `traceparent`, that trace and span; the audit has the same trace; the
A2A call is an `invoke_agent {name}` CLIENT span; errors carry `error.type`;
/metrics shows the conventional histograms, the latency per target and the
`process_*` series, with no label a caller made up.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from mcp import MCPError
from prometheus_client.parser import text_string_to_metric_families

from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, deployment
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, Seen, send_message_body
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.otlp_receiver import CLIENT, SERVER, Exported, Receiver, by_name, otlp_receiver
from tests.support.servers import stop_all

POLICY = "agents:\n  alpha: {}\n"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with otlp_receiver("http/protobuf") as got:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", got.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        for name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"):
            monkeypatch.delenv(name, raising=False)
        yield got


@pytest.fixture
def federated(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Gateway, Recorder]]:
    """A gateway federating one real MCP server, ``alpha``, on SQLite and PostgreSQL."""
    upstream, recorder, _ = upstream_server(stateless=True)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=policy)
    try:
        with gateway.client() as admin:
            added = admin.post("/mcp-servers", json={"name": "Alpha", "url": upstream.url + "/mcp"})
            assert added.status_code == 201, added.text
        recorder.clear()
        yield gateway, recorder
    finally:
        stop_all(gateway.server, upstream)


def _ids() -> tuple[str, str]:
    return uuid.uuid4().hex, uuid.uuid4().hex[:16]


def _call(gateway: Gateway, mode: str, tool: str, meta: dict[str, str], header: str) -> Any:
    token = gateway.token("alice")
    arguments = {"a": 2, "b": 3} if tool.endswith("add") else {}

    async def call() -> Any:
        async with mcp_client(
            gateway.url + "/mcp", token, mode, headers={"traceparent": header}
        ) as client:
            try:
                return await client.call_tool(tool, arguments, meta=cast(Any, meta or None))
            except MCPError as refused:  # returned: raised, it leaves in a task group's group
                return refused

    return anyio.run(call)


def _upstream_call(recorder: Recorder, tool: str) -> tuple[Seen, dict[str, Any]]:
    """The last `tools/call` of ``tool`` the upstream received, and its body."""
    for seen in reversed(recorder.calls()):
        body = json.loads(seen.body) if seen.body.startswith(b"{") else {}
        if body.get("method") == "tools/call" and body["params"]["name"] == tool:
            return seen, body
    raise AssertionError([seen.body[:80] for seen in recorder.calls()])


def _samples(gateway: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with gateway.client() as admin:
        text = admin.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


@pytest.mark.parametrize("mode", MODES)
def test_an_mcp_call_is_one_trace_in_the_conventions_names(
    receiver: Receiver, federated: tuple[Gateway, Recorder], mode: str
) -> None:
    # (The receiver first: the gateway reads the OTEL_* variables as it starts.)
    gateway, recorder = federated
    trace_id, client_span = _ids()
    other_trace, http_span = _ids()  # the HTTP header's: linked, not continued
    meta = {"traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": "acme=7"}
    result = _call(gateway, mode, "alpha__add", meta, f"00-{other_trace}-{http_span}-01")
    assert result.structured_content == {"result": 5}
    seen, body = _upstream_call(recorder, "add")

    def both(spans: list[Exported]) -> bool:
        named = by_name(spans, trace_id)
        return "tools/call alpha__add" in named and "tools/call add" in named

    named = by_name(receiver.wait_for(both), trace_id)
    [server] = named["tools/call alpha__add"]
    assert server.kind == SERVER and server.parent_id == client_span
    attributes = server.attributes
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.tool.name"] == "alpha__add"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["jsonrpc.request.id"]
    assert attributes["mcp.protocol.version"]
    assert attributes["network.transport"] == "tcp"
    assert ("mcp.session.id" in attributes) is (mode == "legacy")
    assert "error.type" not in attributes
    # The gateway's own facts, under the server span: the decision and its scopes.
    [decide] = named["switchboard.decide"]
    assert decide.parent_id == server.span_id
    assert decide.attributes["switchboard.decision"] == "allow"
    assert "switchboard.scopes" in decide.attributes and "switchboard.act" in decide.attributes
    # The MCP CLIENT span to the upstream, under the server span.
    [client] = named["tools/call add"]
    assert client.kind == CLIENT and client.parent_id == server.span_id
    assert client.attributes["mcp.method.name"] == "tools/call"
    assert client.attributes["gen_ai.tool.name"] == "add"
    assert client.attributes["gen_ai.operation.name"] == "execute_tool"
    assert client.attributes["switchboard.target"] == "alpha"
    # The upstream got the trace in params._meta, naming that CLIENT span, and
    # in its HTTP traceparent (under the HTTP request's own span).
    sent = body["params"]["_meta"]
    assert sent["traceparent"] == f"00-{trace_id}-{client.span_id}-01"
    assert sent["tracestate"] == "acme=7"
    assert seen.trace is not None and seen.trace[0] == trace_id
    [post] = [s for s in named["POST"] if s.span_id == seen.trace[1]]
    assert post.parent_id == client.span_id
    # The audit has the trace the client's _meta carried.
    with gateway.client() as admin:
        items = admin.get("/audit", params={"agent": "alpha"}).json()["items"]
    assert trace_id in {item["trace_id"] for item in items}


def test_the_metrics_carry_the_conventions_names_and_bounded_labels(
    federated: tuple[Gateway, Recorder],
) -> None:
    gateway, _ = federated
    _call(gateway, "2026-07-28", "alpha__add", {}, f"00-{_ids()[0]}-{_ids()[1]}-01")
    result = _call(gateway, "2026-07-28", "alpha__fail", {}, f"00-{_ids()[0]}-{_ids()[1]}-01")
    assert result.is_error
    unknown = _call(gateway, "2026-07-28", "made_up_tool", {}, f"00-{_ids()[0]}-{_ids()[1]}-01")
    assert isinstance(unknown, MCPError)
    code = str(unknown.error.code)
    samples = _samples(gateway)
    server = "mcp_server_operation_duration_seconds_count"
    client = "mcp_client_operation_duration_seconds_count"
    method = {"mcp_method_name": "tools/call"}
    ok = _labels(**method, gen_ai_tool_name="alpha__add", error_type="")
    assert samples[(server, ok)] == 1
    failed = _labels(**method, gen_ai_tool_name="alpha__fail", error_type="tool_error")
    assert samples[(server, failed)] == 1
    # A tool the gateway does not know is counted by its error, never named.
    assert samples[(server, _labels(**method, gen_ai_tool_name="", error_type=code))] == 1
    assert not any("made_up_tool" in str(labels) for _, labels in samples)
    assert samples[(client, _labels(**method, gen_ai_tool_name="add", error_type=""))] == 1
    assert samples[(client, _labels(**method, gen_ai_tool_name="fail", error_type="tool_error"))]
    per_target = "switchboard_upstream_duration_seconds_count"
    target = {"target": "alpha", "kind": "mcp_server"}
    assert samples[(per_target, _labels(**target, outcome="ok"))] == 1
    assert samples[(per_target, _labels(**target, outcome="error"))] == 1
    # The buckets are the conventions' advised ones.
    bucket = "mcp_server_operation_duration_seconds_bucket"
    assert (bucket, frozenset({**dict(ok), "le": "300.0"}.items())) in samples
    assert (bucket, frozenset({**dict(ok), "le": "0.01"}.items())) in samples
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        assert samples[(name, frozenset())] > 0, name


def test_an_a2a_message_is_an_invoke_agent_span(
    tmp_path: Path, receiver: Receiver, database_url: str | None
) -> None:
    with deployment(tmp_path, database_url) as dep:
        trace_id, caller_span = _ids()
        answered = httpx.post(
            f"{dep.gateway.url}/a2a/support",
            json=send_message_body("hello"),
            headers={
                "Authorization": f"Bearer {dep.gateway.token('alice', USER_SCOPES)}",
                "A2A-Version": "1.0",
                "traceparent": f"00-{trace_id}-{caller_span}-01",
            },
            timeout=30,
            verify=client_tls(),
        )
        assert answered.status_code == 200 and "result" in answered.json(), answered.text
        received = dep["support"].recorder.calls()[-1]
        card_name = "Support"  # its card's name (`tests.support.delegation`)

        def invoked(spans: list[Exported]) -> bool:
            named = by_name(spans, trace_id)
            return f"invoke_agent {card_name}" in named and "POST /a2a/{agent_id}" in named

        named = by_name(receiver.wait_for(invoked), trace_id)
        samples = _samples(dep.gateway)
    [server] = named["POST /a2a/{agent_id}"]
    assert server.attributes["a2a.method.name"] == "SendMessage"
    assert server.attributes["gen_ai.agent.id"] == "support"
    [invoke] = named[f"invoke_agent {card_name}"]
    assert invoke.kind == CLIENT
    assert invoke.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert invoke.attributes["gen_ai.agent.name"] == card_name
    assert invoke.attributes["gen_ai.agent.id"] == "support"
    assert invoke.attributes["a2a.method.name"] == "SendMessage"
    assert received.trace is not None and received.trace[0] == trace_id
    [post] = [s for s in named["POST"] if s.span_id == received.trace[1]]
    assert post.parent_id == invoke.span_id
    target = _labels(target="support", kind="agent", outcome="ok")
    assert samples[("switchboard_upstream_duration_seconds_count", target)] == 1


def test_without_tracing_the_upstream_still_gets_the_trace_in_meta(
    federated: tuple[Gateway, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, recorder = federated
    trace_id, span_id = _ids()
    meta = {"traceparent": f"00-{trace_id}-{span_id}-00"}  # unsampled: kept so
    _call(gateway, "2026-07-28", "alpha__add", meta, f"00-{_ids()[0]}-{_ids()[1]}-01")
    seen, body = _upstream_call(recorder, "add")
    sent = body["params"]["_meta"]["traceparent"]
    assert sent.startswith(f"00-{trace_id}-") and sent.endswith("-00")
    assert sent.split("-")[2] != span_id  # a span id of the gateway's own
    assert seen.trace is not None and seen.trace[0] == trace_id
    assert "tracestate" not in body["params"]["_meta"]


@pytest.mark.parametrize(
    "meta",
    [
        {"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"},  # all-zero trace id
        {"traceparent": "ff-" + "a" * 32 + "-" + "1" * 16 + "-01"},  # version ff
        {"traceparent": 7},
        {"traceparent": "00-" + "a" * 32 + "-" + "1" * 16 + "-01", "tracestate": "x" * 600},
    ],
)
def test_a_bad_meta_trace_is_not_continued(
    federated: tuple[Gateway, Recorder], meta: dict[str, Any]
) -> None:
    gateway, recorder = federated
    header_trace, header_span = _ids()
    _call(gateway, "2026-07-28", "alpha__add", meta, f"00-{header_trace}-{header_span}-01")
    seen, body = _upstream_call(recorder, "add")
    sent = body["params"]["_meta"]
    if meta["traceparent"] == "00-" + "a" * 32 + "-" + "1" * 16 + "-01":
        # A valid traceparent is kept; a tracestate over 512 characters is dropped whole.
        assert sent["traceparent"].startswith("00-" + "a" * 32)
        assert "tracestate" not in sent
    else:
        assert sent["traceparent"].startswith(f"00-{header_trace}-")
    assert seen.trace is not None and sent["traceparent"].split("-")[1] == seen.trace[0]
