"""OpenTelemetry traces, exported to a real OTLP receiver (OTLP/HTTP and
OTLP/gRPC, started by the test and decoded with the OpenTelemetry proto
package), from a real gateway serving real A2A agents and a real MCP server.

What is checked: the server span continues the caller's `traceparent`; the
decide, mint and record spans hang under it; each upstream request has a
CLIENT span, and the `traceparent` the upstream received names that span as
its parent; the audit record's trace id is the spans' trace id (the caller's,
or the span's fresh one when the caller sent none); no token reaches a span;
the subject can be hashed; with no `OTEL_*` asking for export nothing is
traced at all.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from gateway.observability import tracing
from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.gateway import start_gateway
from tests.support.inspecting import send_message_body
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.servers import stop_all

SERVER, CLIENT, INTERNAL = (
    ProtoSpan.SPAN_KIND_SERVER,
    ProtoSpan.SPAN_KIND_CLIENT,
    ProtoSpan.SPAN_KIND_INTERNAL,
)


@dataclass(frozen=True)
class Exported:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    service: str


@dataclass
class Receiver:
    """The spans an OTLP receiver got, decoded."""

    spans: list[Exported] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""

    def take(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            Exported(
                                name=span.name,
                                kind=span.kind,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                attributes={a.key: _value(a.value) for a in span.attributes},
                                service=service,
                            )
                        )

    def wait_for(
        self, found: Callable[[list[Exported]], bool], seconds: float = 15.0
    ) -> list[Exported]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                spans = list(self.spans)
            if found(spans):
                return spans
            time.sleep(0.05)
        with self.lock:
            names = [(s.name, s.trace_id) for s in self.spans]
        raise AssertionError(f"spans never arrived; got {names}")


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class _OtlpHttp(http.server.BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        ok = self.path == "/v1/traces"
        if ok:
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            self.receiver.take(request)
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _OtlpGrpc(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.receiver.take(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def otlp_http() -> Iterator[Receiver]:
    receiver = Receiver()
    handler = type("Handler", (_OtlpHttp,), {"receiver": receiver})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def otlp_grpc() -> Iterator[Receiver]:
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _OtlpGrpc(receiver), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    receiver.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        server.stop(None)


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver, and the standard variables pointing the gateway at it."""
    protocol = request.param
    with otlp_http() if protocol == "http/protobuf" else otlp_grpc() as got:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", got.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        yield got


def _traceparent() -> tuple[str, str, str]:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


def _send(dep: Deployment, token: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{dep.gateway.url}/a2a/support",
        json=send_message_body("hello"),
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0", **headers},
        timeout=30,
        verify=client_tls(),
    )


def _audited_trace(dep: Deployment) -> str:
    with dep.gateway.client() as admin:
        items = admin.get("/audit", params={"agent": "support"}).json()["items"]
    sent = [i for i in items if i["event"] == "a2a.SendMessage" and i["outcome"] == "ok"]
    assert len(sent) == 1, items
    trace_id: str = sent[0]["trace_id"]
    return trace_id


def _by_name(spans: list[Exported], trace_id: str) -> dict[str, list[Exported]]:
    named: dict[str, list[Exported]] = {}
    for span in spans:
        if span.trace_id == trace_id:
            named.setdefault(span.name, []).append(span)
    return named


def _one_delegation(spans: list[Exported], trace_id: str) -> bool:
    named = _by_name(spans, trace_id)
    return (
        all(
            name in named
            for name in ("POST /a2a/{agent_id}", "switchboard.decide", "switchboard.mint", "POST")
        )
        and "switchboard.record" in named
    )


def test_a_call_is_one_trace_from_caller_to_agent(tmp_path: Path, receiver: Receiver) -> None:
    with deployment(tmp_path) as dep:
        trace_id, caller_span, traceparent = _traceparent()
        token = dep.gateway.token("alice", USER_SCOPES)
        answered = _send(dep, token, {"traceparent": traceparent, "tracestate": "acme=1"})
        assert answered.status_code == 200 and "result" in answered.json(), answered.text
        spans = receiver.wait_for(lambda spans: _one_delegation(spans, trace_id))
        received = dep["support"].recorder.calls()[-1]
        audited = _audited_trace(dep)
    named = _by_name(spans, trace_id)
    [server] = named["POST /a2a/{agent_id}"]
    assert server.kind == SERVER and server.parent_id == caller_span
    assert server.service == "switchboard"
    assert server.attributes["http.route"] == "/a2a/{agent_id}"
    assert server.attributes["http.response.status_code"] == 200
    [decide] = named["switchboard.decide"]
    assert decide.kind == INTERNAL and decide.parent_id == server.span_id
    assert decide.attributes["switchboard.target"] == "support"
    assert decide.attributes["switchboard.action"] == "triage"
    assert decide.attributes["switchboard.decision"] == "allow"
    assert decide.attributes["switchboard.subject"] == "alice"
    [mint] = named["switchboard.mint"]
    assert mint.parent_id == server.span_id
    assert mint.attributes["switchboard.audience"] == dep["support"].resource
    records = named["switchboard.record"]
    assert any(r.attributes["switchboard.outcome"] == "ok" for r in records)
    # The upstream request: a CLIENT span, named by the traceparent it carried.
    assert received.trace is not None
    upstream_trace, upstream_parent, flags = received.trace
    assert (upstream_trace, flags) == (trace_id, "01")
    assert received.headers.get("tracestate") == "acme=1"  # still the caller's trace
    [client] = [s for s in named["POST"] if s.span_id == upstream_parent]
    assert client.kind == CLIENT and client.parent_id == server.span_id
    assert client.attributes["switchboard.target"] == "support"
    assert client.attributes["http.response.status_code"] == 200
    assert client.attributes["url.full"].startswith(dep["support"].server.url)
    # The audit's trace is the spans' trace.
    assert audited == trace_id
    # No token in any span: the caller's, nor the one minted for the agent.
    minted = received.bearer
    assert minted
    for span in spans:
        for value in span.attributes.values():
            assert token not in str(value) and minted not in str(value), span


def test_without_a_traceparent_the_audit_has_the_server_spans_fresh_trace(
    tmp_path: Path, receiver: Receiver
) -> None:
    with deployment(tmp_path) as dep:
        # A malformed traceparent restarts the trace, as a missing one does.
        answered = _send(dep, dep.gateway.token("alice", USER_SCOPES), {"traceparent": "00-xyz"})
        assert answered.status_code == 200, answered.text
        audited = _audited_trace(dep)
        spans = receiver.wait_for(lambda spans: _one_delegation(spans, audited))
        received = dep["support"].recorder.calls()[-1]
    [server] = _by_name(spans, audited)["POST /a2a/{agent_id}"]
    assert server.parent_id == ""  # a root: the gateway started this trace
    assert received.trace is not None and received.trace[0] == audited
    assert "tracestate" not in received.headers


def test_the_subject_can_be_hashed(tmp_path: Path, receiver: Receiver) -> None:
    with deployment(tmp_path, tracing_hash_subject=True) as dep:
        trace_id, _, traceparent = _traceparent()
        answered = _send(dep, dep.gateway.token("alice", USER_SCOPES), {"traceparent": traceparent})
        assert answered.status_code == 200, answered.text
        spans = receiver.wait_for(lambda spans: _one_delegation(spans, trace_id))
    [decide] = _by_name(spans, trace_id)["switchboard.decide"]
    shown = decide.attributes["switchboard.subject"]
    assert shown != "alice" and len(shown) == 32 and int(shown, 16) >= 0
    assert not any("alice" in str(v) for s in spans for v in s.attributes.values())


def test_a_denial_is_traced_with_its_reason(tmp_path: Path, receiver: Receiver) -> None:
    with deployment(tmp_path) as dep:
        trace_id, _, traceparent = _traceparent()
        denied = _send(dep, dep.gateway.token("bob", "sales:quote"), {"traceparent": traceparent})
        assert denied.status_code == 403 and "error" in denied.json(), denied.text
        spans = receiver.wait_for(
            lambda spans: (
                "switchboard.record" in _by_name(spans, trace_id)
                and "POST /a2a/{agent_id}" in _by_name(spans, trace_id)
            )
        )
        assert dep["support"].recorder.calls() == []
    named = _by_name(spans, trace_id)
    [decide] = named["switchboard.decide"]
    assert decide.attributes["switchboard.decision"] == "deny"
    assert "switchboard.mint" not in named and "POST" not in named  # nothing went upstream
    [record] = named["switchboard.record"]
    assert record.attributes["switchboard.outcome"] == "denied"
    [server] = named["POST /a2a/{agent_id}"]
    assert server.attributes["http.response.status_code"] == 403


POLICY = "agents:\n  alpha: {}\n"


@pytest.mark.parametrize("mode", MODES)
def test_an_mcp_tool_call_is_traced_to_the_upstream_server(
    tmp_path: Path, receiver: Receiver, mode: str
) -> None:
    upstream, recorder, _ = upstream_server(stateless=True)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", None, policy_file=policy)
    try:
        with gateway.client() as admin:
            added = admin.post("/mcp-servers", json={"name": "Alpha", "url": upstream.url + "/mcp"})
            assert added.status_code == 201, added.text
        token = gateway.token("alice")
        trace_id, _, traceparent = _traceparent()
        recorder.clear()

        async def call() -> Any:
            async with mcp_client(
                gateway.url + "/mcp", token, mode, headers={"traceparent": traceparent}
            ) as client:
                return await client.call_tool("alpha__add", {"a": 2, "b": 3})

        result = anyio.run(call)
        assert result.structured_content == {"result": 5}
        calls = [seen for seen in recorder.calls() if b'"tools/call"' in seen.body and seen.trace]
        assert calls, [seen.body[:80] for seen in recorder.calls()]
        upstream_trace, upstream_parent, _ = calls[-1].trace or ("", "", "")
        assert upstream_trace == trace_id

        def client_and_its_parent(spans: list[Exported]) -> bool:
            # The server span of the POST ends after its response is sent, so it
            # can be exported after the client span it parents: wait for both.
            parents = {s.parent_id for s in spans if s.span_id == upstream_parent}
            return any(s.span_id in parents for s in spans)

        spans = receiver.wait_for(client_and_its_parent)
    finally:
        stop_all(gateway.server, upstream)
    named = _by_name(spans, trace_id)
    [client] = [s for s in spans if s.span_id == upstream_parent]
    assert client.kind == CLIENT and client.trace_id == trace_id
    assert client.attributes["switchboard.target"] == "alpha"
    assert client.attributes["switchboard.action"] == "add"
    decides = named["switchboard.decide"]
    assert any(d.attributes.get("switchboard.action") == "add" for d in decides)
    # Under the gateway's server span of the POST that carried tools/call.
    servers = {s.span_id for s in named.get("POST /mcp", [])}
    assert client.parent_id in servers, sorted(named)


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_traces_are_on_only_when_the_environment_asks(environ: dict[str, str], on: bool) -> None:
    assert tracing.configured(environ) is on


def test_unusable_settings_are_refused_with_a_reason() -> None:
    with pytest.raises(tracing.TracingConfigError, match="OTLP only"):
        tracing.configured({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(tracing.TracingConfigError, match="http/protobuf or grpc"):
        tracing._exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_with_tracing_off_no_span_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    from adapters import spans

    with deployment(tmp_path) as dep:
        assert not spans.enabled()
        app = dep.gateway.server  # the middleware is not even installed
        trace_id, _, traceparent = _traceparent()
        token = dep.gateway.token("alice", USER_SCOPES)
        assert _send(dep, token, {"traceparent": traceparent}).status_code == 200
        received = dep["support"].recorder.calls()[-1]
        assert app is not None
    # The trace still goes through (W3C Trace Context), with a fresh span id.
    assert received.trace is not None and received.trace[0] == trace_id
