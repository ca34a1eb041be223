"""One request for an MCP server's offerings (a resource read, a prompt, a
completion) through the delegation core (`gateway.delegation.delegate`):
with the credential configured for the server, under its breaker, always
recorded, and described in OpenTelemetry's MCP conventions
(`adapters.operations`)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import mcp_types as types
from mcp.client.session import ClientSession

from adapters.mcp import McpUpstream
from adapters.operations import Operation
from gateway.delegation.delegate import Delegate, Sending
from gateway.delegation.permits import Permit
from gateway.federation.credentials import UpstreamCredentials
from gateway.federation.federated_tools import (
    AUDIT_EVENT,
    classify_failure,
    counts_for_breaker,
    explain_failure,
)

R = TypeVar("R")


async def call_offering(
    delegate: Delegate,
    permit: Permit,
    operation: Operation,
    upstream: McpUpstream,
    credentials: UpstreamCredentials,
    send: Callable[[ClientSession], Awaitable[R]],
    timeout_seconds: float,
) -> R:
    async def attempt() -> R:
        credential = await credentials.for_call(permit)
        return await upstream.request(send, credential=credential, timeout_seconds=timeout_seconds)

    sending: Sending[R] = Sending(
        upstream=operation.target,
        attempt=attempt,
        explain=functools.partial(explain_failure, operation.target),
        recorded=_recorded,
        classify=classify_failure,
        counts=counts_for_breaker,
        operation=operation,
    )
    return await delegate.send(permit, AUDIT_EVENT, sending)


def _recorded(result: object) -> tuple[str, str]:
    return ("input_required" if isinstance(result, types.InputRequiredResult) else "ok"), ""
