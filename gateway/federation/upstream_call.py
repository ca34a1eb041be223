"""One `tools/call` as the core sends it to the upstream (`McpFederation.call_tool`,
step 4): with the credential got at each attempt, an upstream's refusal of the
user's own token turned into the connection it needs, under the server's
breaker, retried if the tool is idempotent, recorded."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from adapters.mcp import McpUpstream
from adapters.mcp_http import refusals_noted
from adapters.mcp_relay import CallRelay
from adapters.openapi import OpenApiUpstream
from adapters.operations import Operation
from gateway.delegation.delegate import Sending
from gateway.federation.credentials import CallCredential
from gateway.federation.federated_tools import (
    FederatedTool,
    classify_failure,
    counts_for_breaker,
    explain_failure,
    result_record,
)

ToolResult = types.CallToolResult | types.InputRequiredResult


def tool_sending(
    upstream: McpUpstream | OpenApiUpstream,
    tool: FederatedTool,
    credential: CallCredential,
    arguments: Mapping[str, Any] | None,
    *,
    timeout: float,
    idempotent: bool,
    progress_callback: ProgressFnT | None,
    input_responses: types.InputResponses | None,
    request_state: str | None,
    relay: CallRelay | None,
    legacy: bool,
) -> Sending[ToolResult]:
    async def call() -> ToolResult:
        with refusals_noted() as refusals:
            try:
                return await upstream.call_tool(
                    tool.upstream_name,
                    arguments,
                    credential=await credential.get(),
                    timeout_seconds=timeout,
                    progress_callback=progress_callback,
                    input_responses=input_responses,
                    request_state=request_state,
                    relay=relay,
                    legacy=legacy,
                )
            except Exception:
                refused = await credential.refused(refusals)
                if refused is not None:
                    raise refused from None
                raise

    wire = upstream.spec.transport if isinstance(upstream, McpUpstream) else "http"
    return Sending(
        upstream=tool.server_id,
        attempt=call,
        before=credential.check,
        went_with=credential.went_with,
        explain=functools.partial(explain_failure, tool.server_id),
        idempotent=idempotent,
        recorded=result_record,
        classify=classify_failure,
        counts=counts_for_breaker,
        operation=Operation.mcp(tool.server_id, wire, "tools/call", tool.upstream_name),
    )
