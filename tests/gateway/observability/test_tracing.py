"""The process's global tracer provider, which the gateway never records to,
is the no-op one once a gateway starts (`tracing.quiet_global_provider`)."""

from __future__ import annotations

from opentelemetry import trace

from gateway.observability import tracing


def test_the_global_provider_is_the_no_op_one() -> None:
    tracing.quiet_global_provider({})
    provider = trace.get_tracer_provider()
    assert isinstance(provider, trace.NoOpTracerProvider)
    # What the a2a-sdk opens on every call: a span that records nothing.
    with provider.get_tracer("a2a-python-sdk").start_as_current_span("call") as span:
        assert not span.is_recording()
    # Set once: a second gateway in the process changes nothing, and logs no warning.
    tracing.quiet_global_provider({})
    assert trace.get_tracer_provider() is provider
