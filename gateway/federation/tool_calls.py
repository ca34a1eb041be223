"""One federated tool's call, once decided: quarantine, the live upstream,
the credential, and the send through the delegation core.

`sending` is the target's side of the call, which the core's `Delegate.call`
asks for once the call is decided and minted (`McpFederation.call_tool`).
A caller that must record something once the call will be sent (a flow
step: its token, and that it sent) says so in ``on_sending``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from adapters.mcp import McpUpstream, UpstreamUnavailable
from adapters.mcp_http import refusals_noted
from adapters.mcp_relay import CallRelay
from adapters.openapi import OpenApiUpstream
from adapters.operations import Operation
from gateway.delegation.delegate import Delegate, Sending
from gateway.delegation.permits import Permit
from gateway.federation.catalog import Server
from gateway.federation.credentials import CallCredential, UpstreamCredentials
from gateway.federation.federated_tools import (
    AUDIT_EVENT,
    FederatedTool,
    NotSent,
    ToolQuarantined,
    classify_failure,
    counts_for_breaker,
    explain_failure,
    result_record,
)
from gateway.federation.upstreams import McpUpstreams
from gateway.storage.outages import outage_of

Result = types.CallToolResult | types.InputRequiredResult


class AdmittedTool(NamedTuple):
    """A call of one federated tool, decided and minted (`Delegate.call`)."""

    tool: FederatedTool
    server: Server
    permit: Permit


async def sending(
    delegate: Delegate,
    upstreams: McpUpstreams,
    admitted: AdmittedTool,
    arguments: Mapping[str, Any] | None,
    *,
    connect_timeout_seconds: float,
    default_timeout_seconds: float,
    idempotent: bool,
    progress_callback: ProgressFnT | None = None,
    input_responses: types.InputResponses | None = None,
    request_state: str | None = None,
    relay: CallRelay | None = None,
    legacy: bool = False,
    user_token: str | None = None,
    on_sending: Callable[[], Awaitable[None]] | None = None,
) -> Sending[Result]:
    """How to send an admitted call (``relay`` and ``legacy``: `McpUpstream.call_tool`;
    ``user_token``: the bearer token the caller's request came with, for a
    server that exchanges it at the user's identity provider -- it goes
    nowhere else); recorded however it ends. ``on_sending`` runs once the
    call will be sent (the tool approved, its server connected, the
    credential there): a flow step writes there that it sent. If it fails,
    the call ends unsent, recorded, and what its admission took (a
    coordination lease, budget) is given back."""
    tool, server, permit = admitted
    upstream, credentials = await _live_upstream(
        delegate, upstreams, admitted, connect_timeout_seconds
    )
    timeout = server.timeout_seconds or default_timeout_seconds
    credential = CallCredential(credentials, permit, user_token)

    call_tool = functools.partial(
        upstream.call_tool,
        tool.upstream_name,
        arguments,
        timeout_seconds=timeout,
        progress_callback=progress_callback,
        input_responses=input_responses,
        request_state=request_state,
        relay=relay,
        legacy=legacy,
    )
    # Through the core: the server's breaker, retries if idempotent, recorded (cancels too).
    wire = upstream.spec.transport if isinstance(upstream, McpUpstream) else "http"
    return Sending(
        upstream=tool.server_id,
        attempt=_attempt(call_tool, credential),
        before=_before(credential, on_sending),
        went_with=credential.went_with,
        explain=functools.partial(explain_failure, tool.server_id),
        idempotent=idempotent,
        recorded=result_record,
        classify=classify_failure,
        counts=counts_for_breaker,
        operation=Operation.mcp(tool.server_id, wire, "tools/call", tool.upstream_name),
    )


async def _live_upstream(
    delegate: Delegate,
    upstreams: McpUpstreams,
    admitted: AdmittedTool,
    connect_timeout_seconds: float,
) -> tuple[McpUpstream | OpenApiUpstream, UpstreamCredentials]:
    """What serves the admitted tool, ready, with the credential configured
    for it; a refusal recorded (a tool not approved, a server not connected),
    or the gateway's own outage, otherwise."""
    tool, _, permit = admitted
    # Only the approved definition may be called.
    if not tool.callable:
        refusal = ToolQuarantined(tool)
        await delegate.record(permit, AUDIT_EVENT, "quarantined", str(refusal))
        raise refusal
    # The upstream, with the credential configured for it.
    live = upstreams.tools_of(tool.server_id)
    if live is None:
        detail = f"MCP server {tool.server_id} is not connected yet"
        await delegate.record(permit, AUDIT_EVENT, "upstream_error", detail)
        raise UpstreamUnavailable(detail)
    upstream, credentials = live
    await upstream.wait_ready(connect_timeout_seconds)
    failure = upstream.own_failure
    if not upstream.ready and failure and (outage := outage_of(failure)) is not None:
        # Not connected because the gateway's own part failed (its
        # database down): that outage is the answer, not the server.
        raise outage
    return upstream, credentials


def _attempt(
    call_tool: Callable[..., Awaitable[Result]], credential: CallCredential
) -> Callable[[], Awaitable[Result]]:
    """One attempt: ``call_tool`` with the credential of the moment; a
    refusal of the user's own token is the connection's to say."""

    async def call() -> Result:
        with refusals_noted() as refusals:
            try:
                return await call_tool(credential=await credential.get())
            except Exception:
                refused = await credential.refused(refusals)
                if refused is not None:
                    raise refused from None
                raise

    return call


def _before(
    credential: CallCredential, on_sending: Callable[[], Awaitable[None]] | None
) -> Callable[[], Awaitable[None]]:
    """What runs once the call will be sent: the credential checked, then
    ``on_sending``; its failure ends the call unsent (`NotSent`)."""

    async def before() -> None:
        await credential.check()
        if on_sending is None:
            return
        try:
            await on_sending()
        except Exception as exc:
            if outage_of(exc) is not None:
                raise  # the gateway's own dependency: that outage is the answer
            raise NotSent(f"not sent: {exc}") from exc

    return before
