"""One upstream operation -- an MCP request to a federated server, an A2A
request to an agent -- as OpenTelemetry's GenAI conventions describe it
(`adapters.semconv`): a CLIENT span per attempt, and its duration reported to
whoever listens (the gateway's metrics: `mcp.client.operation.duration` and
the latency per target).

A door describes the operation (`Operation`) and hands it to the delegation
core with the call (`gateway.delegation.delegate.Sending.operation`); the
core wraps each attempt in `traced`. The span is current while the attempt
runs, so what the attempt sends hangs under it: the HTTP requests' CLIENT
spans (`adapters.spans`) and, for MCP, the `traceparent` in `params._meta`
(`meta_trace`), which names this span as the upstream server span's parent
(mcp.md "Context propagation": the MCP client span is the MCP server span's
parent whatever the transport).

With tracing off no span is made; the duration is still measured (two clock
reads) when someone listens.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import mcp_types as types
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, format_span_id

from adapters import semconv, spans, trace_context
from adapters.errors import UpstreamError, UpstreamTimeout

T = TypeVar("T")
TargetKind = Literal["agent", "mcp_server"]
Attributes = dict[str, str | int | float | bool]
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


@dataclass(frozen=True)
class Operation:
    """What one upstream call is, in the conventions' terms."""

    target: str  # the registered agent's or MCP server's id
    kind: TargetKind
    method: str  # `mcp.method.name` (tools/call, ...) or `a2a.method.name` (SendMessage, ...)
    name: str | None = None  # the tool (or prompt) the MCP request is about
    agent_name: str | None = None  # the agent card's name
    transport: str | None = None  # `network.transport`: tcp (HTTP), pipe (stdio)

    @classmethod
    def mcp(cls, server_id: str, transport: str, method: str, name: str | None = None) -> Operation:
        """A request to a federated MCP server over ``transport`` (http, stdio)."""
        wire = "pipe" if transport == "stdio" else "tcp"  # mcp.md note [10]
        return cls(server_id, "mcp_server", method, name, transport=wire)

    @classmethod
    def agent(cls, agent_id: str, card: Mapping[str, Any], method: str) -> Operation:
        """An A2A request to a registered agent; its name is its card's."""
        name = card.get("name")
        return cls(agent_id, "agent", method, agent_name=name if isinstance(name, str) else None)

    @property
    def span_name(self) -> str:
        if self.kind == "agent":
            return semconv.agent_span_name(self.method, self.agent_name)
        return semconv.mcp_span_name(self.method, semconv.usable_name(self.name))

    def attributes(self) -> Attributes:
        found: Attributes = {"switchboard.target": self.target}
        if self.transport:
            found[semconv.NETWORK_TRANSPORT] = self.transport
        if self.kind == "agent":
            found[semconv.A2A_METHOD_NAME] = self.method
            found[semconv.GEN_AI_AGENT_ID] = self.target
            if self.agent_name:
                found[semconv.GEN_AI_AGENT_NAME] = self.agent_name
            if self.method in semconv.A2A_INVOKING:
                found[semconv.GEN_AI_OPERATION_NAME] = semconv.INVOKE_AGENT
            return found
        found[semconv.MCP_METHOD_NAME] = self.method
        if self.method == "tools/call":
            found[semconv.GEN_AI_OPERATION_NAME] = semconv.EXECUTE_TOOL
            if self.name:
                found[semconv.GEN_AI_TOOL_NAME] = self.name
        elif self.method == "prompts/get" and self.name:
            found[semconv.GEN_AI_PROMPT_NAME] = self.name
        return found


# Told of every attempt's end: the operation, its seconds, its `error.type`
# (None when it succeeded).
Listener = Callable[[Operation, float, str | None], None]


def error_type(exc: BaseException) -> str:
    """`error.type` of a failed attempt: the JSON-RPC code an MCP server
    answered with (mcp.md note [1]), ``timeout``, else the exception's class."""
    if isinstance(exc, UpstreamError):
        return str(exc.code)
    if isinstance(exc, TimeoutError | UpstreamTimeout):
        return "timeout"
    return type(exc).__qualname__


def result_error(result: object) -> str | None:
    """`error.type` of an answer that is a failure all the same: a tool's
    `CallToolResult` with ``isError`` is ``tool_error`` (mcp.md note [1])."""
    if isinstance(result, types.CallToolResult) and result.is_error:
        return semconv.TOOL_ERROR
    return None


def traced(
    operation: Operation | None,
    attempt: Callable[[], Awaitable[T]],
    listeners: Sequence[Listener],
) -> Callable[[], Awaitable[T]]:
    """``attempt``, each run of it spanned and timed; ``attempt`` itself when
    there is nothing to describe, or no one to tell and no tracer."""
    if operation is None or (not listeners and not spans.enabled()):
        return attempt

    async def run() -> T:
        started = time.perf_counter()
        with _span(operation) as span:
            try:
                result = await attempt()
            except BaseException as exc:
                _ended(operation, started, span, error_type(exc), str(exc), listeners)
                raise
            _ended(operation, started, span, result_error(result), None, listeners)
            return result

    return run


def traced_stream(
    operation: Operation | None,
    open_stream: Callable[[], AsyncIterator[T]],
    listeners: Sequence[Listener],
) -> Callable[[], AsyncIterator[T]]:
    """A stream's whole life as one operation: from opening to its end. Its
    span is not made current (a context entered in an async generator cannot
    be left safely across its yields), so what the stream sends hangs under
    the caller's span."""
    if operation is None or (not listeners and not spans.enabled()):
        return open_stream

    async def run() -> AsyncIterator[T]:
        started = time.perf_counter()
        span = None
        if spans.enabled():
            span = spans.start(operation.span_name, operation.attributes(), SpanKind.CLIENT)
        failure: tuple[str, str] | None = None
        try:
            async for item in open_stream():
                yield item
        except BaseException as exc:
            failure = (error_type(exc), str(exc))
            raise
        finally:
            kind, message = failure or (None, None)
            _ended(operation, started, span, kind, message, listeners)
            if span is not None:
                span.end()

    return run


def _span(operation: Operation) -> contextlib.AbstractContextManager[Span | None]:
    if not spans.enabled():
        return _NO_SPAN
    return spans.span(operation.span_name, operation.attributes(), SpanKind.CLIENT)


def _ended(
    operation: Operation,
    started: float,
    span: Span | None,
    error: str | None,
    message: str | None,
    listeners: Sequence[Listener],
) -> None:
    seconds = time.perf_counter() - started
    if span is not None and error is not None:
        # "Span status SHOULD be set to ERROR when error.type is present".
        attributes: Attributes = {semconv.ERROR_TYPE: error}
        if error.lstrip("-").isdigit():
            attributes[semconv.RPC_RESPONSE_STATUS_CODE] = error
        span.set_attributes(attributes)
        span.set_status(Status(StatusCode.ERROR, (message or "")[:200] or None))
    for listener in listeners:
        listener(operation, seconds, error)


def meta_trace() -> dict[str, str]:
    """The trace context an MCP request carries in ``params._meta`` (mcp.md
    "Context propagation", SEP-414: unprefixed `traceparent`, `tracestate`),
    for the delegation this context serves: naming the current span (the
    operation's CLIENT span) when tracing is on and it belongs to that trace,
    else a fresh span id, as the HTTP header is made
    (`adapters.trace_context`). Empty outside any delegation."""
    current = trace_context.current()
    if current is None:
        return {}
    span_id: str | None = None
    if spans.enabled():
        context = trace.get_current_span().get_span_context()
        if context.is_valid and format(context.trace_id, "032x") == current.trace_id:
            span_id = format_span_id(context.span_id)
    carried = {trace_context.TRACEPARENT: current.traceparent(span_id)}
    if current.state is not None:
        carried[trace_context.TRACESTATE] = current.state
    return carried
