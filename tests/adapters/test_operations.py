"""adapters.operations and adapters.semconv: an upstream operation's span name,
attributes, error type and timing; the trace an MCP message carries in
``params._meta`` (adapters.trace_context.carried / of_message); and the
trace context the gateway puts in the ``_meta`` it sends."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import mcp_types as types
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.datastructures import Headers

from adapters import semconv, spans, trace_context
from adapters.errors import UpstreamError, UpstreamTimeout
from adapters.operations import Operation, error_type, meta_trace, traced, traced_stream

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans.enable(provider.get_tracer("test"))
    try:
        yield exporter
    finally:
        spans.disable()


def isolated(fn: Any) -> Any:
    return contextvars.Context().run(fn)


def test_names_follow_the_conventions() -> None:
    tool = Operation.mcp("alpha", "http", "tools/call", "add")
    assert tool.span_name == "tools/call add"
    assert tool.attributes() == {
        "switchboard.target": "alpha",
        "network.transport": "tcp",
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
    }
    assert Operation.mcp("alpha", "stdio", "tools/list").attributes()["network.transport"] == "pipe"
    assert Operation.mcp("alpha", "http", "tools/list").span_name == "tools/list"
    prompt = Operation.mcp("alpha", "http", "prompts/get", "review")
    assert prompt.span_name == "prompts/get review"
    assert prompt.attributes()["gen_ai.prompt.name"] == "review"
    assert "gen_ai.operation.name" not in prompt.attributes()  # execute_tool for tools only
    agent = Operation.agent("support", {"name": "Support Desk"}, "SendMessage")
    assert agent.span_name == "invoke_agent Support Desk"
    assert agent.attributes()["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes()["gen_ai.agent.id"] == "support"
    assert agent.attributes()["a2a.method.name"] == "SendMessage"
    task = Operation.agent("support", {}, "GetTask")
    assert task.span_name == "GetTask"  # a2a.md: {a2a.method.name}
    assert "gen_ai.operation.name" not in task.attributes()
    assert Operation.agent("support", {"name": 7}, "SendMessage").span_name == "invoke_agent"


@pytest.mark.parametrize("name", ["", "a b", "x" * 129, "naïve", "a/b", None, 3])
def test_an_odd_tool_name_leaves_the_span_named_by_its_method(name: Any) -> None:
    assert semconv.usable_name(name) is None
    assert Operation.mcp("alpha", "http", "tools/call", name).span_name == "tools/call"


def test_metric_names_as_prometheus_shows_them() -> None:
    assert (
        semconv.prometheus_name(semconv.MCP_SERVER_OPERATION_DURATION)
        == "mcp_server_operation_duration_seconds"
    )
    assert semconv.label(semconv.GEN_AI_TOOL_NAME) == "gen_ai_tool_name"


def test_error_types() -> None:
    assert error_type(UpstreamError(-32602, "bad")) == "-32602"
    assert error_type(UpstreamTimeout("slow")) == "timeout"
    assert error_type(TimeoutError()) == "timeout"
    assert error_type(ConnectionResetError()) == "ConnectionResetError"


def test_each_attempt_is_a_client_span_and_is_timed(exported: InMemorySpanExporter) -> None:
    heard: list[tuple[str, str | None]] = []
    operation = Operation.mcp("alpha", "http", "tools/call", "add")
    calls: Iterator[UpstreamError | types.CallToolResult] = iter(
        [UpstreamError(-32000, "busy"), types.CallToolResult(content=[], is_error=True)]
    )

    async def attempt() -> types.CallToolResult:
        found = next(calls)
        if isinstance(found, UpstreamError):
            raise found
        return found

    async def twice(run: Callable[[], Awaitable[types.CallToolResult]]) -> None:
        with pytest.raises(UpstreamError):
            await run()
        await run()

    run = traced(operation, attempt, [lambda op, s, e: heard.append((op.target, e))])
    asyncio.run(twice(run))
    assert heard == [("alpha", "-32000"), ("alpha", "tool_error")]
    first, second = exported.get_finished_spans()
    assert first.name == second.name == "tools/call add"
    assert first.kind == SpanKind.CLIENT
    assert first.attributes is not None and first.attributes["error.type"] == "-32000"
    assert first.attributes["rpc.response.status_code"] == "-32000"
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes is not None and second.attributes["error.type"] == "tool_error"


def test_untraced_and_unheard_an_attempt_is_left_as_it_is() -> None:
    async def attempt() -> int:
        return 1

    assert traced(Operation.mcp("a", "http", "ping"), attempt, []) is attempt
    assert traced(None, attempt, [lambda *_: None]) is attempt


def test_a_stream_is_one_operation(exported: InMemorySpanExporter) -> None:
    heard: list[str | None] = []

    async def items() -> Any:
        yield 1
        yield 2

    async def read() -> list[int]:
        opened = traced_stream(
            Operation.agent("support", {"name": "Support"}, "SendStreamingMessage"),
            items,
            [lambda _op, _s, error: heard.append(error)],
        )
        return [item async for item in opened()]

    assert asyncio.run(read()) == [1, 2]
    assert heard == [None]
    [span] = exported.get_finished_spans()
    assert span.name == "invoke_agent Support" and span.kind == SpanKind.CLIENT


# The trace an MCP message carries ---------------------------------------------------


def test_a_valid_meta_traceparent_is_the_messages_trace() -> None:
    found = trace_context.carried({"traceparent": TRACEPARENT, "tracestate": "acme=1"})
    assert found is not None
    assert (found.trace_id, found.parent_id, found.sampled, found.state) == (
        TRACE,
        PARENT,
        True,
        "acme=1",
    )
    # It wins over the HTTP request's.
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    chosen = trace_context.of_message({"traceparent": TRACEPARENT}, Headers({"traceparent": other}))
    assert chosen.trace_id == TRACE


@pytest.mark.parametrize(
    "meta",
    [
        None,
        {},
        {"traceparent": 42},
        {"traceparent": ["00-" + TRACE + "-" + PARENT + "-01"]},
        {"traceparent": f"00-{'0' * 32}-{PARENT}-01"},
        {"traceparent": f"ff-{TRACE}-{PARENT}-01"},
        {"traceparent": f"00-{TRACE.upper()}-{PARENT}-01"},
        {"traceparent": f"00-{TRACE}-{PARENT}-01-extra"},
    ],
)
def test_an_invalid_meta_traceparent_is_not_continued(meta: Any) -> None:
    assert trace_context.carried(meta) is None
    http = f"00-{'1' * 32}-{'2' * 16}-01"
    assert trace_context.of_message(meta, Headers({"traceparent": http})).trace_id == "1" * 32


def test_a_bad_meta_tracestate_is_dropped_whole() -> None:
    for state in ("x" * 600, "a=1,a=2", 5, "=bad"):
        found = trace_context.carried({"traceparent": TRACEPARENT, "tracestate": state})
        assert found is not None and found.trace_id == TRACE and found.state is None


def test_the_meta_sent_upstream_carries_the_delegations_trace() -> None:
    def untraced() -> tuple[dict[str, str], dict[str, str]]:
        outside = meta_trace()
        trace_context.enter(trace_context.TraceContext(TRACE, False, "acme=1", PARENT))
        return outside, meta_trace()

    outside, inside = isolated(untraced)
    assert outside == {}  # no delegation: nothing to carry
    prefix, suffix = f"00-{TRACE}-", "-00"
    assert inside["traceparent"].startswith(prefix) and inside["traceparent"].endswith(suffix)
    assert inside["traceparent"] != f"00-{TRACE}-{PARENT}-00"  # a span id of the gateway's
    assert inside["tracestate"] == "acme=1"


def test_with_tracing_on_the_meta_names_the_current_span(exported: InMemorySpanExporter) -> None:
    def traced_call() -> tuple[str, str]:
        trace_context.enter(trace_context.TraceContext(TRACE, True, None, PARENT))
        with spans.span("tools/call add", kind=SpanKind.CLIENT) as span:
            assert span is not None
            return meta_trace()["traceparent"], format(span.get_span_context().span_id, "016x")

    sent, span_id = isolated(traced_call)
    assert sent == f"00-{TRACE}-{span_id}-01"


def test_the_a2a_doors_server_span_names_only_a2as_methods() -> None:
    assert semconv.a2a_server_facts("support", {"method": "SendMessage"}) == {
        "gen_ai.agent.id": "support",
        "a2a.method.name": "SendMessage",
    }
    odd: tuple[object, ...] = (
        {"method": "message/send"},
        {"method": "x" * 500},
        [],
        None,
        {"method": 3},
    )
    for body in odd:
        assert semconv.a2a_server_facts("support", body) == {"gen_ai.agent.id": "support"}
