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
from gateway.delegation.delegate import Sending
from gateway.delegation.permits import Permit
from gateway.federation.credentials import UpstreamCredentials
from gateway.federation.federated_tools import (
    classify_failure,
    counts_for_breaker,
    explain_failure,
)

R = TypeVar("R")


def offering_sending(
    permit: Permit,
    operation: Operation,
    upstream: McpUpstream,
    credentials: UpstreamCredentials,
    send: Callable[[ClientSession], Awaitable[R]],
    timeout_seconds: float,
) -> Sending[R]:
    """How to make one request of a server's offerings with ``permit``."""

    async def attempt() -> R:
        credential = await credentials.for_call(permit)
        return await upstream.request(send, credential=credential, timeout_seconds=timeout_seconds)

    return Sending(
        upstream=operation.target,
        attempt=attempt,
        explain=functools.partial(explain_failure, operation.target),
        recorded=_recorded,
        classify=classify_failure,
        counts=counts_for_breaker,
        operation=operation,
    )


def _recorded(result: object) -> tuple[str, str]:
    return ("input_required" if isinstance(result, types.InputRequiredResult) else "ok"), ""
