"""The settings of `/mcp`'s 2025-11-25 sessions (`gateway.mcp.transport`): how
long one is kept, passed on to the replica that holds it, its streams resumed:
a part of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class McpSessionOptions(BaseModel):
    mcp_session_idle_seconds: float = Field(
        default=1800.0, gt=0, description="How long an idle 2025-11-25 MCP session is kept."
    )
    mcp_session_routing: bool = Field(
        default=True,
        description="Pass a request for a 2025-11-25 MCP session opened on another replica on "
        "to that replica (no balancer affinity needed).",
    )
    mcp_resumable: bool = Field(
        default=True,
        description="Keep the events of 2025-11-25 sessions' SSE streams so a client whose "
        "connection drops can resume with Last-Event-ID (in memory, bounded below).",
    )
    mcp_sse_retry_ms: int = Field(
        default=1000,
        ge=0,
        le=600_000,
        description="The SSE `retry` sent in a resumable stream's priming event: how long a "
        "client waits before reconnecting.",
    )
    mcp_resume_max_events_per_stream: int = Field(
        default=1000, ge=1, description="Events kept per SSE stream; the oldest go first."
    )
    mcp_resume_max_events: int = Field(
        default=50_000, ge=1, description="Events kept for resumption in all; oldest first."
    )
    mcp_resume_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of events kept for resumption in all (their JSON); oldest first.",
    )
    mcp_resume_max_events_per_user: int = Field(
        default=10_000,
        ge=1,
        description="Events kept for one user's sessions; their own oldest go first, so one "
        "busy user cannot push out everyone else's.",
    )
    mcp_resume_max_bytes_per_user: int = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of events kept for one user's sessions; their own oldest first.",
    )
