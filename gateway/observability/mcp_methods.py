"""MCP's own method names, the values an `/mcp` request's method label takes
(`http_metrics`, `operation_metrics`); any other is counted as "other", so
that a client cannot make a new series by naming a method."""

from __future__ import annotations

# MCP's methods (2025-11-25 and 2026-07-28): a label is one of these or "other".
MCP_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/list",
        "tasks/cancel",
        "tasks/result",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)
