"""The names OpenTelemetry's GenAI semantic conventions give MCP and agent
telemetry, as the gateway emits them: one place, so a rename upstream is one
edit here.

Followed (status "Development" in all three), read on 2026-11-27 from
open-telemetry/semantic-conventions-genai (where the GenAI and MCP
conventions moved from semantic-conventions after v1.41; docs at commit
0393513c):

- docs/gen-ai/mcp.md, "Spans" ("Context propagation", "Client", "Server") and
  "Metrics" (`mcp.client.operation.duration`, `mcp.server.operation.duration`);
- docs/gen-ai/gen-ai-agent-spans.md, "Invoke agent client span" and
  "Execute tool span";
- docs/gen-ai/a2a.md, "Spans" (`a2a.method.name` and the A2A method names).

What the conventions do not cover keeps the gateway's own `switchboard.*`
names: the decision, the scopes granted, the act chain, the flow run and step.
"""

from __future__ import annotations

import re
from typing import Final

# --- Attributes (mcp.md "Client"/"Server" tables) ---------------------------
MCP_METHOD_NAME: Final = "mcp.method.name"
MCP_SESSION_ID: Final = "mcp.session.id"
MCP_PROTOCOL_VERSION: Final = "mcp.protocol.version"
JSONRPC_REQUEST_ID: Final = "jsonrpc.request.id"
RPC_RESPONSE_STATUS_CODE: Final = "rpc.response.status_code"
ERROR_TYPE: Final = "error.type"
NETWORK_TRANSPORT: Final = "network.transport"
NETWORK_PROTOCOL_NAME: Final = "network.protocol.name"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_PROMPT_NAME: Final = "gen_ai.prompt.name"
# gen-ai-agent-spans.md "Invoke agent client span"; a2a.md "Client".
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_VERSION: Final = "gen_ai.agent.version"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
A2A_METHOD_NAME: Final = "a2a.method.name"

# gen_ai.operation.name's well-known values used here.
EXECUTE_TOOL: Final = "execute_tool"
INVOKE_AGENT: Final = "invoke_agent"
# error.type: "tool_error" for a CallToolResult with isError (mcp.md note
# [1]); "_OTHER" when nothing better applies.
TOOL_ERROR: Final = "tool_error"
OTHER_ERROR: Final = "_OTHER"

# --- Metrics (mcp.md "Metrics") ---------------------------------------------
# Histograms in seconds; the conventions' advised bucket boundaries.
MCP_CLIENT_OPERATION_DURATION: Final = "mcp.client.operation.duration"
MCP_SERVER_OPERATION_DURATION: Final = "mcp.server.operation.duration"
DURATION_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

# a2a.md's method names: A2A 1.0's operations by their 1.0 names (§9), also
# how the A2A door tells a 1.0 request from a 0.3 one (`gateway.a2a.versions`).
A2A_METHODS: Final = frozenset(
    {
        "SendMessage",
        "SendStreamingMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "SubscribeToTask",
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
        "GetExtendedAgentCard",
    }
)
# A2A methods that invoke the agent (a2a.md lists the names; the agent spans'
# "invoke_agent" is what sending a message is).
A2A_INVOKING: Final = frozenset({"SendMessage", "SendStreamingMessage"})

# A tool name fit for a span name: MCP 2025-11-25 "Tools", "Tool names"
# (1-128 characters of A-Z a-z 0-9 _ - .). Anything else (what a client
# made up) leaves the span named by its method alone: a span name must stay
# low-cardinality (mcp.md "Span name").
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def usable_name(name: object) -> str | None:
    """``name`` if it may stand in a span name or a metric label, else None."""
    return name if isinstance(name, str) and _TOOL_NAME.fullmatch(name) else None


def mcp_span_name(method: str, target: str | None) -> str:
    """`{mcp.method.name} {target}`, or `{mcp.method.name}` without a target."""
    return f"{method} {target}" if target else method


def agent_span_name(method: str, agent_name: str | None) -> str:
    """`invoke_agent {gen_ai.agent.name}` for a message sent to an agent; the
    other A2A operations are named by `{a2a.method.name}` (a2a.md "Client")."""
    if method not in A2A_INVOKING:
        return method
    return f"{INVOKE_AGENT} {agent_name}" if agent_name else INVOKE_AGENT


def prometheus_name(metric: str, unit: str = "seconds") -> str:
    """An OpenTelemetry metric's name as Prometheus shows it (OpenTelemetry's
    "Prometheus and OpenMetrics Compatibility": dots to underscores, the unit
    as a suffix)."""
    return f"{metric.replace('.', '_')}_{unit}"


def label(attribute: str) -> str:
    """An attribute's name as a Prometheus label (same rule)."""
    return attribute.replace(".", "_")


def a2a_server_facts(agent_id: str, body: object) -> dict[str, str | int | float | bool]:
    """What the A2A door's server span adds (a2a.md "Server"): the agent, and
    the A2A 1.0 method of a JSON-RPC body when it is one of A2A's."""
    facts: dict[str, str | int | float | bool] = {GEN_AI_AGENT_ID: agent_id}
    method = body.get("method") if isinstance(body, dict) else None
    if method in A2A_METHODS:
        facts[A2A_METHOD_NAME] = str(method)
    return facts
