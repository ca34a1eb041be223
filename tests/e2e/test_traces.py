"""OpenTelemetry traces, exported to a real OTLP receiver (OTLP/HTTP and
OTLP/gRPC, started by the test and decoded with the OpenTelemetry proto
package), from a real gateway serving real A2A agents and a real MCP server.

What is checked (the MCP conventions' spans: tests/e2e/test_trace_conventions.py):
the server span continues the caller's `traceparent`; the
decide, mint and record spans hang under it; each upstream request has a
CLIENT span, and the `traceparent` the upstream received names that span as
its parent; the audit record's trace id is the spans' trace id (the caller's,
or the span's fresh one when the caller sent none); no token reaches a span;
the subject can be hashed; with no `OTEL_*` asking for export nothing is
traced at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.observability import tracing
from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.inspecting import send_message_body
from tests.support.otlp_receiver import (
    CLIENT,
    INTERNAL,
    SERVER,
    Exported,
    Receiver,
    by_name,
    otlp_receiver,
)


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver, and the standard variables pointing the gateway at it."""
    protocol = request.param
    with otlp_receiver(protocol) as got:
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


def _one_delegation(spans: list[Exported], trace_id: str) -> bool:
    named = by_name(spans, trace_id)
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
    named = by_name(spans, trace_id)
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
    # Under the A2A operation's span (`adapters.operations`), under the server span.
    [invoke] = named["invoke_agent Support"]
    assert invoke.kind == CLIENT and invoke.parent_id == server.span_id
    assert client.kind == CLIENT and client.parent_id == invoke.span_id
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
    [server] = by_name(spans, audited)["POST /a2a/{agent_id}"]
    assert server.parent_id == ""  # a root: the gateway started this trace
    assert received.trace is not None and received.trace[0] == audited
    assert "tracestate" not in received.headers


def test_the_subject_can_be_hashed(tmp_path: Path, receiver: Receiver) -> None:
    with deployment(tmp_path, tracing_hash_subject=True) as dep:
        trace_id, _, traceparent = _traceparent()
        answered = _send(dep, dep.gateway.token("alice", USER_SCOPES), {"traceparent": traceparent})
        assert answered.status_code == 200, answered.text
        spans = receiver.wait_for(lambda spans: _one_delegation(spans, trace_id))
    [decide] = by_name(spans, trace_id)["switchboard.decide"]
    shown = decide.attributes["switchboard.subject"]
    assert shown != "alice" and len(shown) == 32 and int(shown, 16) >= 0
    assert not any("alice" in str(v) for s in spans for v in s.attributes.values()), [
        (s.name, k, v) for s in spans for k, v in s.attributes.items() if "alice" in str(v)
    ]


def test_a_denial_is_traced_with_its_reason(tmp_path: Path, receiver: Receiver) -> None:
    with deployment(tmp_path) as dep:
        trace_id, _, traceparent = _traceparent()
        denied = _send(dep, dep.gateway.token("bob", "sales:quote"), {"traceparent": traceparent})
        assert denied.status_code == 403 and "error" in denied.json(), denied.text
        spans = receiver.wait_for(
            lambda spans: (
                "switchboard.record" in by_name(spans, trace_id)
                and "POST /a2a/{agent_id}" in by_name(spans, trace_id)
            )
        )
        assert dep["support"].recorder.calls() == []
    named = by_name(spans, trace_id)
    [decide] = named["switchboard.decide"]
    assert decide.attributes["switchboard.decision"] == "deny"
    assert "switchboard.mint" not in named and "POST" not in named  # nothing went upstream
    [record] = named["switchboard.record"]
    assert record.attributes["switchboard.outcome"] == "denied"
    [server] = named["POST /a2a/{agent_id}"]
    assert server.attributes["http.response.status_code"] == 403


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
