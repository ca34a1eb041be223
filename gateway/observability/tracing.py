"""OpenTelemetry traces: configured by the standard `OTEL_*` variables, off
unless they ask for an exporter.

On when `OTEL_TRACES_EXPORTER` names `otlp`, or (with that variable unset)
when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
is set; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps it
off. (The SDK's own default exporter is `otlp`; a gateway that starts
sending spans to localhost:4318 because nobody said otherwise would be a
surprise, so "no endpoint, no traces".) Everything else is the SDK's own
reading of the environment ("OpenTelemetry Environment Variable
Specification"): `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` (`http/protobuf`,
the default, or `grpc`), endpoint, headers, timeout, compression;
`OTEL_TRACES_SAMPLER[_ARG]`; `OTEL_SERVICE_NAME` (default `switchboard`)
and `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_BSP_*` for the batch processor.

A server span per HTTP request (`ServerSpans`), continuing the caller's
`traceparent`; the spans inside it come from `adapters.spans`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import spans
from adapters.trace_context import TRACEPARENT, TRACESTATE
from gateway.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()


class TracingConfigError(ValueError):
    """An `OTEL_*` value the gateway cannot act on."""


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER")
    if exporters is not None and exporters.strip():
        names = {name.strip().lower() for name in exporters.split(",")}
        unknown = names - {"otlp", "none"}
        if unknown:
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER={exporters!r}: the gateway exports traces by OTLP"
                " only; use otlp (or none)"
            )
        return "otlp" in names
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def check(environ: Mapping[str, str] = os.environ) -> None:
    """Raise `TracingConfigError` for what `start` could not act on."""
    if configured(environ):
        _protocol(environ)


def _protocol(environ: Mapping[str, str]) -> str:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in ("http/protobuf", "grpc"):
        raise TracingConfigError(
            f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc"
        )
    return protocol


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    if _protocol(environ) == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    return GrpcSpanExporter()


def _resource(version: str, environ: Mapping[str, str]) -> Resource:
    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attributes: dict[str, Any] = {SERVICE_VERSION: version}
    if not named:
        attributes[SERVICE_NAME] = "switchboard"
    # `create` reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; what is
    # given here wins over them, hence the name only when none was set.
    return Resource.create(attributes)


def subject_hasher(settings: Settings) -> Any:
    """How spans show a subject id: as given, or HMAC-SHA256 under a key
    derived from the sealing secret (the resource id without one), so the
    same subject has the same value across replicas and restarts."""
    if not settings.tracing_hash_subject:
        return str
    secret = (settings.sealing_secret or settings.effective_resource_id).encode()
    key = hashlib.sha256(b"switchboard trace subject\x00" + secret).digest()

    def hashed(subject: str) -> str:
        return hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:32]

    return hashed


def quiet_global_provider(environ: Mapping[str, str] = os.environ) -> None:
    """The process's global tracer provider, which nothing here records to
    (the gateway's spans go to its own provider, `start`), set to the no-op
    one while nobody has set one: the a2a-sdk opens a span through it on
    every call and every streamed event (`a2a.utils.telemetry.
    trace_function`), and with none set OpenTelemetry looks
    ``OTEL_PYTHON_TRACER_PROVIDER`` up in the environment and builds a proxy
    tracer each time -- CPU on every call and event, for spans that go
    nowhere (docs/history/performance-to-2026-11-27.md, "Where a step's cost
    is, by taking pieces out"). Nothing is lost: without a global
    provider those spans went nowhere either. A provider named in that
    variable, or set before the gateway starts (an auto-instrumentation's),
    is kept; one set after is not taken (OpenTelemetry sets it once)."""
    if "OTEL_PYTHON_TRACER_PROVIDER" in environ:
        return
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(trace.NoOpTracerProvider())


def start(
    settings: Settings,
    version: str,
    stack: contextlib.ExitStack | contextlib.AsyncExitStack,
    environ: Mapping[str, str] = os.environ,
) -> TracerProvider | None:
    """Spans on, exported as the environment says, until ``stack`` closes
    (which flushes what is queued); None when the environment asks for none."""
    quiet_global_provider(environ)
    if not configured(environ):
        return None
    provider = TracerProvider(resource=_resource(version, environ))
    provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    spans.enable(provider.get_tracer("switchboard", version), subject_hasher(settings))
    stack.callback(provider.shutdown)
    stack.callback(spans.disable)
    return provider


class _ScopeHeaders(Getter[list[tuple[bytes, bytes]]]):
    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode()
        found = [v.decode("latin-1") for k, v in carrier if k.lower() == wanted]
        return found or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_HEADERS = _ScopeHeaders()
_TRACE_HEADERS = {TRACEPARENT.encode(), TRACESTATE.encode()}


class ServerSpans:
    """A SERVER span per HTTP request, continuing the caller's `traceparent`
    (W3C Trace Context, through the SDK's propagator), named by the route
    matched ("POST /a2a/{agent_id}").

    The app below sees the request with the span's own `traceparent` (and
    the caller's `tracestate` only when the trace is still the caller's), so
    the trace id every front door audits (`adapters.trace_context.begin`) is
    the span's, even where the caller sent none or one that did not parse,
    and even in a task that does not share the request's context (an MCP
    session's)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = spans.tracer()
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        parent = _PROPAGATOR.extract(headers, getter=_HEADERS)
        method = scope.get("method", "")
        attributes = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
        }
        status: dict[str, int] = {}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        with tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            context = span.get_span_context()
            scope = dict(scope, headers=_with_trace(headers, context, parent))
            try:
                await self.app(scope, receive, send_status)
            finally:
                path = _route_of(scope)
                if path:
                    span.update_name(f"{method} {path}")
                    span.set_attribute("http.route", path)
                if "code" in status:
                    span.set_attribute("http.response.status_code", status["code"])
                    if status["code"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))


_ROUTES: dict[int, str] = {}


def _route_of(scope: Scope) -> str | None:
    """The path template of the route that served the request: FastAPI's
    routes put themselves in the scope; Starlette's (the A2A and MCP doors)
    only their endpoint, looked up once in the app's routes."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None)
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    key = id(endpoint)
    if key not in _ROUTES:
        router = getattr(scope.get("app"), "router", None)
        for candidate in getattr(router, "routes", ()):
            if getattr(candidate, "endpoint", None) is endpoint:
                _ROUTES[key] = candidate.path
                break
        else:
            return None
    return _ROUTES[key]


def _with_trace(
    headers: list[tuple[bytes, bytes]], context: Any, parent: Any
) -> list[tuple[bytes, bytes]]:
    from opentelemetry import trace

    flags = "01" if context.trace_flags.sampled else "00"
    traceparent = (
        f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-{flags}"
    )
    caller = trace.get_current_span(parent).get_span_context()
    same_trace = caller.is_valid and caller.trace_id == context.trace_id
    kept = [
        (k, v)
        for k, v in headers
        if k.lower() not in _TRACE_HEADERS or (same_trace and k.lower() == b"tracestate")
    ]
    kept.append((b"traceparent", traceparent.encode()))
    return kept
