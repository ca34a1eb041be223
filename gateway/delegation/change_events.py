"""The audit's change events: what a caller changed through the API, as
against the decisions on delegated calls (`gateway.delegation.audit`)."""

from __future__ import annotations

# What a caller changes through the API (`action_event`), as against the
# decisions on delegated calls: `GET /audit?kind=change` lists these, and the
# default listing, the decision log, leaves them out.
CHANGE_EVENTS = frozenset(
    {
        "agent.registered",
        "agent.refreshed",
        "agent.removed",
        "agent.credential_issued",
        "agent.credential_revoked",
        "agent.oauth_client_set",
        "agent.oauth_client_removed",
        "vendor_agent.registered",
        "vendor_agent.removed",
        "mcp_server.registered",
        "mcp_server.refreshed",
        "mcp_server.removed",
        "mcp_tool.approved",
        "mcp_set.created",
        "mcp_set.updated",
        "mcp_set.deleted",
        "flow.registered",
        "flow.deleted",
        "policy.changed",
        "connection.created",
        "connection.revoked",
        "audit.export.replay",
        "api_key.created",
        "api_key.revoked",
    }
)
