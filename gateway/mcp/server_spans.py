"""`/mcp`'s side of OpenTelemetry's MCP conventions (`adapters.semconv`): a
SERVER span per message received and the `mcp.server.operation.duration`
histogram, from the SDK middleware that wraps every inbound request and
notification (outermost: it sees the error each one ends with).

It takes the place of the SDK's own middleware (`mcp.server` installs one
that records to the process's global tracer provider, which the gateway
keeps a no-op: `gateway.observability.tracing.quiet_global_provider`), so a
message gets one span, made by the gateway's tracer, with what the SDK's
lacks: `mcp.session.id`, the gateway's trace for the audit, the metric.

The span's parent is what the message carries in ``params._meta`` (mcp.md
"Context propagation": "MCP server instrumentation SHOULD, by default, use
context extracted from MCP params._meta as a parent for MCP server span and
SHOULD link current ambient context"), else the HTTP request's server span
(`ServerSpans`), looked up from the request's own `traceparent` -- not from
the task's context, which in a 2025-11-25 session is the session's first
request's. The trace found is the message's from here on
(`adapters.trace_context.enter`), with this span as the parent of what is
made for it, so `trace_of` and the audit agree with the spans.
"""

from __future__ import annotations

import time
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from pydantic import ValidationError

from adapters import semconv, spans, trace_context
from gateway.observability.http_metrics import metrics_of

_SESSION_HEADER = "mcp-session-id"
# The SDK's own (`mcp.server.lowlevel.server.Server.middleware`'s default),
# known by name: its module is private.
_SDK_MIDDLEWARE = "OpenTelemetryMiddleware"
_NAMED = frozenset({"tools/call", "prompts/get"})


def without_sdk_spans(middleware: list[Any]) -> list[Any]:
    """The SDK server's middleware but its OpenTelemetry one."""
    return [m for m in middleware if type(m).__name__ != _SDK_MIDDLEWARE]


class McpServerSpans:
    """The SDK middleware: see the module's docstring."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        tracer = spans.tracer()
        metrics = metrics_of(getattr(ctx.request, "scope", None))
        if tracer is None and metrics is None:
            return await call_next(ctx)
        started = time.perf_counter()
        name = ctx.params.get("name") if ctx.params and ctx.method in _NAMED else None
        target = semconv.usable_name(name)
        error: str | None = None
        try:
            if tracer is None:
                result = await call_next(ctx)
            else:
                result = await self._traced(tracer, ctx, target, call_next)
            if ctx.method == "tools/call" and _is_tool_error(result):
                error = semconv.TOOL_ERROR
            return result
        except MCPError as exc:
            error = str(exc.error.code)
            raise
        except ValidationError:
            error = str(types.INVALID_PARAMS)
            raise
        except BaseException as exc:
            error = type(exc).__qualname__
            raise
        finally:
            if metrics is not None:
                # A tool is a label only once it ran (an answer, or its own
                # failure): a name the gateway does not know is no series.
                ran = error is None or error == semconv.TOOL_ERROR
                metrics.operations.observe_server(
                    ctx.method,
                    target if ran else None,
                    error,
                    time.perf_counter() - started,
                )

    async def _traced(
        self,
        tracer: trace.Tracer,
        ctx: ServerRequestContext[Any, Any],
        target: str | None,
        call_next: CallNext,
    ) -> HandlerResult:
        headers = getattr(ctx.request, "headers", None)
        carried = trace_context.carried(ctx.meta)
        http = trace_context.of_message(None, headers)
        parent = carried or http
        links = [Link(_remote(http))] if carried is not None and http.parent_id else []
        # No trace to continue (stdio): a root, whose fresh trace is the message's.
        context = (
            trace.set_span_in_context(NonRecordingSpan(_remote(parent)))
            if parent.parent_id
            else Context()
        )
        with tracer.start_as_current_span(
            semconv.mcp_span_name(ctx.method, target),
            context=context,
            kind=SpanKind.SERVER,
            attributes=_attributes(ctx, target, headers),
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            own = span.get_span_context()
            trace_context.enter(
                trace_context.TraceContext(
                    format(own.trace_id, "032x"),
                    parent.sampled,
                    parent.state,
                    format(own.span_id, "016x"),
                )
            )
            try:
                result = await call_next(ctx)
            except MCPError as exc:
                _failed(span, str(exc.error.code), exc.error.message)
                raise
            except ValidationError:
                _failed(span, str(types.INVALID_PARAMS), "Invalid request parameters")
                raise
            except Exception as exc:
                span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
                raise
            if ctx.method == "tools/call" and _is_tool_error(result):
                span.set_attribute(semconv.ERROR_TYPE, semconv.TOOL_ERROR)
                span.set_status(Status(StatusCode.ERROR))
            return result


def _attributes(
    ctx: ServerRequestContext[Any, Any], target: str | None, headers: Any
) -> dict[str, str | int | float | bool]:
    """The server span's attributes (mcp.md "Server"); never an argument."""
    found: dict[str, str | int | float | bool] = {
        semconv.MCP_METHOD_NAME: ctx.method,
        semconv.MCP_PROTOCOL_VERSION: ctx.protocol_version,
        semconv.NETWORK_TRANSPORT: "tcp",
        semconv.NETWORK_PROTOCOL_NAME: "http",
    }
    if ctx.request_id is not None:  # a notification has none (mcp.md note [2])
        found[semconv.JSONRPC_REQUEST_ID] = str(ctx.request_id)
    session = headers.get(_SESSION_HEADER) if headers is not None else None
    if session:
        found[semconv.MCP_SESSION_ID] = session
    if ctx.method == "tools/call":
        found[semconv.GEN_AI_OPERATION_NAME] = semconv.EXECUTE_TOOL
        if target:
            found[semconv.GEN_AI_TOOL_NAME] = target
    elif ctx.method == "prompts/get" and target:
        found[semconv.GEN_AI_PROMPT_NAME] = target
    return found


def _remote(trace_of: trace_context.TraceContext) -> SpanContext:
    state = TraceState.from_header([trace_of.state]) if trace_of.state else None
    return SpanContext(
        trace_id=int(trace_of.trace_id, 16),
        span_id=int(trace_of.parent_id or "0", 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if trace_of.sampled else 0),
        trace_state=state,
    )


def _failed(span: trace.Span, code: str, message: str) -> None:
    # "Span status SHOULD be set to ERROR when error.type is present. The
    # status description SHOULD match the JSONRPCError.message".
    span.set_attributes({semconv.ERROR_TYPE: code, semconv.RPC_RESPONSE_STATUS_CODE: code})
    span.set_status(Status(StatusCode.ERROR, message[:200]))


def _is_tool_error(result: HandlerResult) -> bool:
    """A tool's own failure: `CallToolResult` with ``isError`` (mcp.md note [1])."""
    if isinstance(result, types.CallToolResult):
        return result.is_error is True
    return isinstance(result, dict) and result.get("isError") is True
