"""The settings of a call to an upstream agent or MCP server: its timeouts and
limits, its circuit breaker, its retries (`gateway.delegation.resilience`):
a part of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UpstreamCallOptions(BaseModel):
    upstream_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long to wait for an agent's answer, unless its registration "
        "says otherwise.",
    )
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    upstream_max_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest non-streamed answer from an agent."
    )
    stream_max_seconds: float = Field(
        default=3600.0, gt=0, description="How long one A2A stream may last through the gateway."
    )
    stream_max_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Most bytes one A2A stream may carry."
    )
    stream_idle_seconds: float = Field(
        default=300.0, gt=0, description="How long an A2A stream may stay silent between events."
    )
    breaker_failure_threshold: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Consecutive upstream failures (connection, timeout, 5xx) that open "
        "an agent's or MCP server's circuit breaker.",
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long an open breaker fails calls fast before one probe call.",
    )
    retry_max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Calls in all (the first included) for an idempotent call that "
        "fails transiently.",
    )
    retry_base_delay_seconds: float = Field(
        default=0.1, ge=0, le=60, description="Backoff before the first retry (then doubling)."
    )
    retry_max_delay_seconds: float = Field(
        default=2.0, ge=0, le=300, description="Cap on one backoff; each wait is jittered."
    )
