"""OpenTelemetry spans of the gateway's own work: decide, mint, record, each
upstream HTTP request, each flow step.

Off unless the gateway turned tracing on (`enable`, from
`gateway.observability.tracing`, when the standard `OTEL_*` variables ask
for an exporter): then `span()` hands back one shared no-op context manager
and `traced_session_configs()` no hook, so an untraced gateway pays a global
read per span and nothing per request.

One trace, three records of it. The trace id an audit record carries
(`adapters.trace_context`), the `traceparent` each upstream request carries,
and the spans exported are the same trace:

- the server span continues the caller's `traceparent`, and the request
  the app sees carries the server span's own `traceparent`
  (`gateway.observability.tracing`), so `begin` takes its trace id as the
  request's: a caller without one gets the span's fresh trace id in the
  audit too;
- a span started while a delegation's trace is not the current span's (an
  approved call, a run taken over after a restart, an MCP session's task)
  is parented under that trace, so it joins the audit's trace, not the
  job's;
- every upstream HTTP request made for a delegation gets a CLIENT span
  (aiohttp's trace hooks, installed only when tracing is on), and its
  `traceparent` names that span as the parent (W3C Trace Context,
  "parent-id": the id of the request as known by the caller), so the
  upstream's spans hang under the gateway's request span.

What spans carry: the target agent or server, the skill or tool, the
decision and the outcome; the subject id, as given or as a keyed hash
(`tracing_hash_subject`). Never a token, a message or an argument; an
upstream URL without its query string or user info.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import SimpleNamespace
from typing import Any

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from adapters import trace_context

Attributes = Mapping[str, str | int | float | bool]

_tracer: Tracer | None = None
_subject: Callable[[str], str] = str
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
# What the delegation being served is for: its target and action, added to
# the CLIENT spans of the upstream requests made for it.
_DELEGATION: ContextVar[Attributes | None] = ContextVar("switchboard_delegation", default=None)


def enable(tracer: Tracer, subject: Callable[[str], str] = str) -> None:
    """Spans from here on, made by ``tracer``; ``subject`` is how a subject id
    is shown (as is, or a keyed hash)."""
    global _tracer, _subject
    _tracer, _subject = tracer, subject


def disable() -> None:
    global _tracer, _subject
    _tracer, _subject = None, str


def enabled() -> bool:
    return _tracer is not None


def tracer() -> Tracer | None:
    return _tracer


def subject(value: str) -> str:
    return _subject(value)


def span(
    name: str,
    attributes: Attributes | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    *,
    trace_id: str | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span of the current delegation's trace, or of ``trace_id`` (an audit
    record's); a no-op when tracing is off."""
    if _tracer is None:
        return _NO_SPAN
    return _tracer.start_as_current_span(
        name, context=_parent(trace_id), kind=kind, attributes=attributes
    )


def start(name: str, attributes: Attributes, kind: SpanKind = SpanKind.INTERNAL) -> Span | None:
    """A span of the current delegation's trace, started but not made current
    (a stream's, which lives across yields); the caller ends it. None when
    tracing is off."""
    if _tracer is None:
        return None
    return _tracer.start_span(name, context=_parent(), kind=kind, attributes=attributes)


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (when tracing is on)."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(attributes)


def bind_delegation(attributes: Attributes) -> None:
    """The upstream requests this context makes from here on are for this
    delegation: their CLIENT spans carry ``attributes``."""
    if _tracer is not None:
        _DELEGATION.set(attributes)


def _parent(trace_id: str | None = None) -> otel_context.Context | None:
    """The context a new span starts under: the current one when it belongs
    to the delegation's trace (or there is no delegation), else that trace,
    as a remote parent -- the server span of the request that carried it
    when known -- so the span joins what the audit recorded (an MCP session's
    task runs in a context copied from an earlier request's)."""
    delegation = trace_context.current()
    if trace_id is not None and (delegation is None or delegation.trace_id != trace_id):
        if not trace_context.valid_trace_id(trace_id):
            return None  # a record older than trace ids
        delegation = trace_context.TraceContext(trace_id)
    if delegation is None:
        return None
    current = trace.get_current_span().get_span_context()
    if current.is_valid and format(current.trace_id, "032x") == delegation.trace_id:
        return None
    parent = SpanContext(
        trace_id=int(delegation.trace_id, 16),
        span_id=int(delegation.parent_id or secrets.token_hex(8), 16) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if delegation.sampled else 0),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def traced_session_configs() -> list[aiohttp.TraceConfig]:
    """aiohttp hooks giving each upstream request of a delegation its CLIENT
    span (none when tracing is off: the hooks fire on every step of every
    request)."""
    if _tracer is None:
        return []
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_request_start)
    config.on_request_end.append(_request_end)
    config.on_request_exception.append(_request_exception)
    return [config]


async def _request_start(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
) -> None:
    # Called in the task making the request, before the request is built
    # (aiohttp `ClientSession._request`), so the header it gets
    # (`trace_context.stamp`) can name this span.
    ctx.span = None
    if _tracer is None or trace_context.current() is None:
        return  # a health probe, a session's upkeep: no delegation's request
    url = params.url
    attributes: dict[str, Any] = {
        "http.request.method": params.method,
        "server.address": url.host or "",
        "server.port": url.port or 0,
        "url.full": str(url.with_query(None).with_user(None).with_fragment(None)),
    }
    attributes.update(_DELEGATION.get() or {})
    span = _tracer.start_span(
        params.method, context=_parent(), kind=SpanKind.CLIENT, attributes=attributes
    )
    ctx.span = span
    ctx.token = trace_context.set_request_span(format(span.get_span_context().span_id, "016x"))


def _finish(ctx: SimpleNamespace, status: int | None, error: BaseException | None) -> None:
    # Set first thing in `_request_start`; aiohttp ends only the requests it started.
    span: Span | None = ctx.span
    if span is None:
        return
    token: Token[str | None] = ctx.token
    trace_context.reset_request_span(token)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    if error is not None:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
    span.end()


async def _request_end(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    _finish(ctx, params.response.status, None)


async def _request_exception(
    _session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceRequestExceptionParams,
) -> None:
    _finish(ctx, None, params.exception)
