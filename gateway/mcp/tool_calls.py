"""`tools/call` of a federated MCP tool at `/mcp` (`gateway.mcp.front`):
`McpFederation.call_tool`, the one delegation pipeline, with the caller's
progress, cancellation and log level relayed; a call held for approval as
the held answer (`gateway.mcp.approvals`); a missing connection as the
question to connect (or a refusal once declined); an upstream's input
request put to a 2025-11-25 client and the call made again with its answer
(`gateway.mcp.input_relay`). The gateway's refusals and upstream failures
are JSON-RPC errors (`gateway.mcp.errors`)."""

from __future__ import annotations

import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext

from adapters.mcp import UpstreamError, UpstreamUnavailable
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.pipeline import ApprovalRequired, Caller, DelegationDenied
from gateway.federation.federated_tools import FederatedTool, ToolNotFound, ToolQuarantined
from gateway.federation.federation import McpFederation
from gateway.mcp.approvals import McpApprovals
from gateway.mcp.errors import (
    TOO_MANY_ROUNDS,
    connect_refusal,
    connection_required,
    credential_refusal,
    mcp_error,
    user_token_of,
)
from gateway.mcp.input_relay import (
    MAX_ROUNDS,
    ProgressRelay,
    ask_legacy_client,
    can_be_asked,
    is_modern,
)
from gateway.mcp.relay import DownstreamRelay, SessionLevel
from policies.tokens import TokenInvalid


async def call_tool(
    federation: McpFederation,
    approvals: McpApprovals | None,
    tool: FederatedTool,
    params: types.CallToolRequestParams,
    caller: Caller,
    trace_id: str,
    progress: ProgressRelay,
    approved: bool,
    *,
    ctx: ServerRequestContext,
    log_level: SessionLevel,
    connect_answer: bool | None,
) -> types.CallToolResult | types.InputRequiredResult:
    responses, state = params.input_responses, params.request_state
    if connect_answer is not None:
        # The answer to our own "connect first" question: the call is made
        # afresh -- the upstream never sees our question's state. Declined
        # and still not connected: a tool error, not the question again.
        responses, state = None, None
    declined = connect_answer is False
    for _ in range(MAX_ROUNDS):
        try:
            result = await federation.call_tool(
                params.name,
                params.arguments,
                caller=caller,
                trace_id=trace_id,
                progress_callback=progress,
                input_responses=responses,
                request_state=state,
                approved=approved,
                relay=DownstreamRelay(ctx, log_level),
                legacy=not is_modern(ctx),
                user_token=user_token_of(ctx),
            )
        except (ApprovalRequired, ConnectionRequired, UserCredentialUnavailable) as refused:
            return await _refused(refused, approvals, tool, params, ctx, declined=declined)
        except (
            ToolNotFound,
            DelegationDenied,
            TokenInvalid,
            ToolQuarantined,
            UpstreamUnavailable,
            UpstreamError,
        ) as exc:
            raise mcp_error(exc, params.name) from None
        if not isinstance(result, types.InputRequiredResult) or is_modern(ctx):
            return result
        responses = await ask_legacy_client(ctx, result.input_requests or {})
        state = result.request_state
    raise MCPError(TOO_MANY_ROUNDS, f"{params.name} asked for input more than {MAX_ROUNDS} times")


async def _refused(
    refused: ApprovalRequired | ConnectionRequired | UserCredentialUnavailable,
    approvals: McpApprovals | None,
    tool: FederatedTool,
    params: types.CallToolRequestParams,
    ctx: ServerRequestContext,
    *,
    declined: bool,
) -> types.CallToolResult | types.InputRequiredResult:
    """The answer to a call not made: held for approval, or waiting for the
    user's connection (asked to connect, or refused once they declined)."""
    if isinstance(refused, ApprovalRequired):
        if approvals is None:
            raise mcp_error(refused, params.name) from None
        schema = tool.definition.get("outputSchema") is not None
        return await approvals.hold(
            refused,
            params.name,
            params.arguments,
            kind="tool",
            output_schema=schema,
            ask=can_be_asked(ctx),
        )
    if isinstance(refused, ConnectionRequired):
        if declined:
            return connect_refusal(refused, str(refused))
        return connection_required(ctx, refused, params.name, modern=is_modern(ctx))
    return credential_refusal(refused, params.name)
