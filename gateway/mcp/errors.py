"""The MCP errors `/mcp` answers with, and the caller and trace of a request.

Errors are MCP's (2025-11-25 "Tools", "Error handling"): an unknown tool is
the JSON-RPC error -32602; the gateway's refusals and upstream failures are
JSON-RPC errors with the codes below and a message that says what happened.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp import MCPError, UrlElicitationRequiredError
from mcp.server import ServerRequestContext
from mcp.server.context import CallNext, HandlerResult

from adapters.mcp import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from adapters.trace_context import enter as enter_trace
from adapters.trace_context import of_message
from gateway.agents.outages import DependencyUnavailableError
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.audit_records import AuditEvent, outage_event
from gateway.delegation.pipeline import (
    ApprovalRequired,
    Caller,
    CoordinationRefused,
    DelegationDenied,
    RateLimited,
)
from gateway.federation.federated_tools import ToolNotFound, ToolQuarantined
from gateway.mcp.auth import CALLER_KEY, current_caller
from gateway.storage.outages import DependencyUnavailable, outage_of
from policies.tokens import TokenInvalid

# JSON-RPC implementation-defined server errors (-32000..-32099). -32000 and
# -32001 are avoided: the SDK's client reads them as "connection closed" and
# "request timeout"; -32020..-32022 and -32042 are the spec's own.
DELEGATION_REFUSED = -32010
TOOL_QUARANTINED = -32011
UPSTREAM_UNAVAILABLE = -32012
UPSTREAM_TIMEOUT = -32013
TOO_MANY_ROUNDS = -32014
# A rate limit of the policy is reached; `data.retry_after` says when to retry.
RATE_LIMITED = -32015
# A dependency of the gateway (its database, Redis) is down: the same code as
# on the A2A front door (`gateway.agents.outages`). MCP defines no "unavailable"
# error and the answer rides in a stream whose HTTP status is already sent,
# so the retry hint is in ``error.data``: ``{"dependency", "retryAfterSeconds"}``.
DEPENDENCY_UNAVAILABLE = -32050


def mcp_error(exc: Exception, name: str) -> MCPError:
    """The MCP error a caller gets for a refused or failed call."""
    if isinstance(exc, ToolNotFound):
        # The spec's own example: "Unknown tool: invalid_tool_name" (-32602).
        return MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
    if isinstance(exc, ApprovalRequired):
        reasons = list(exc.decision.reasons)
        return MCPError(
            DELEGATION_REFUSED,
            f"{name} needs human approval: " + "; ".join(reasons),
            {"reasons": reasons, "approval_required": True},
        )
    if isinstance(exc, RateLimited):
        reasons = list(exc.decision.reasons)
        return MCPError(
            RATE_LIMITED,
            f"calling {name} was refused: " + "; ".join(reasons),
            {"reasons": reasons, "denial": "rate_limited", "retry_after": exc.retry_after},
        )
    if isinstance(exc, DelegationDenied):
        reasons = list(exc.decision.reasons)
        data: dict[str, Any] = {"reasons": reasons}
        if exc.decision.denial is not None:
            data["denial"] = exc.decision.denial.value
        if isinstance(exc, CoordinationRefused):  # a hold, a cooldown, a lease, a budget
            data["rule"] = exc.rule
            if exc.retry_after is not None:
                data["retry_after"] = exc.retry_after
        return MCPError(
            DELEGATION_REFUSED, f"calling {name} was refused: " + "; ".join(reasons), data
        )
    if isinstance(exc, TokenInvalid):  # the token's end (`usable_until`) came since the door
        return MCPError(
            DELEGATION_REFUSED, f"calling {name} was refused: {exc}", {"reasons": [str(exc)]}
        )
    if isinstance(exc, ToolQuarantined):
        return MCPError(TOOL_QUARANTINED, str(exc), {"state": exc.tool.state.value})
    if isinstance(exc, UpstreamTimeout):
        return MCPError(UPSTREAM_TIMEOUT, str(exc))
    if isinstance(exc, UpstreamUnavailable):
        return MCPError(UPSTREAM_UNAVAILABLE, str(exc))
    if isinstance(exc, UpstreamError):
        # The upstream's own JSON-RPC error (say -32602 for bad arguments) passes through.
        return MCPError(exc.code, exc.message, exc.data)
    raise exc


# A 2026-07-28 "connect first" question: its key in `input_requests`, and the
# request state that marks the retry as the answer to it (not the upstream's).
CONNECT_KEY = "switchboard-connect"
CONNECT_STATE = "switchboard-connect:"


def connection_required(
    ctx: ServerRequestContext, needed: ConnectionRequired, name: str, *, modern: bool
) -> types.CallToolResult | types.InputRequiredResult:
    """The caller's user has not connected their account at the tool's server;
    nothing was sent. Said the way the client can act on:

    * a 2026-07-28 client that takes elicitations: an `input_required` result
      whose one request is a URL elicitation of the connect page (multi
      round-trip requests); its retry, after the user accepted, calls again;
    * a 2025-11-25 client that takes URL-mode elicitations
      (``capabilities.elicitation.url``): the -32042 URL-elicitation-required
      error (2025-11-25 "Elicitation", URL mode; retired in 2026-07-28);
    * any other: a tool error whose text carries the URL, which the model can
      show its user (MCP tools, "Tool Execution Errors")."""
    capabilities = getattr(ctx.session, "client_capabilities", None)
    elicitation = capabilities.elicitation if capabilities is not None else None
    message = (
        f"{name} acts with your own account at {needed.upstream}: {needed.reason}. "
        f"Connect it at {needed.connect_url}, then try again."
    )
    if modern and elicitation is not None:
        question = types.ElicitRequest(
            params=types.ElicitRequestURLParams(message=message, url=needed.connect_url)
        )
        return types.InputRequiredResult(
            input_requests={CONNECT_KEY: question},
            request_state=CONNECT_STATE + needed.upstream,
        )
    if not modern and elicitation is not None and elicitation.url is not None:
        raise UrlElicitationRequiredError(
            [
                types.ElicitRequestURLParams(
                    message=message,
                    url=needed.connect_url,
                    elicitation_id=f"connect-{needed.upstream}-{secrets.token_urlsafe(8)}",
                )
            ],
            message,
        )
    return connect_refusal(needed, message)


def connect_refusal(needed: ConnectionRequired, message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)],
        is_error=True,
        _meta={"switchboard/connect_url": needed.connect_url},
    )


def credential_refusal(missing: UserCredentialUnavailable, name: str) -> types.CallToolResult:
    """No credential of the user's own for the tool's server (not one they can
    connect here: their identity provider's, say). A tool error, so the model
    can tell its user; nothing was sent."""
    text = f"{name} acts with your own credential at {missing.upstream}: {missing.reason}"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def user_token_of(ctx: ServerRequestContext) -> str | None:
    """The bearer token the HTTP request carrying this message came with (as
    `McpAuth` verified it), for an exchange at the user's identity provider;
    None over stdio. Never sent upstream."""
    request = ctx.request
    user = getattr(request, "scope", {}).get("user") if request is not None else None
    token = getattr(getattr(user, "access_token", None), "token", None)
    return token if isinstance(token, str) else None


def answers_connect(params: types.CallToolRequestParams) -> bool | None:
    """None: not the retry of a "connect first" question; else whether the user
    accepted it (connected, they say -- the call is tried again)."""
    state = params.request_state
    if state is None or not state.startswith(CONNECT_STATE):
        return None
    answer = (params.input_responses or {}).get(CONNECT_KEY)
    return isinstance(answer, types.ElicitResult) and answer.action == "accept"


def unavailable(outage: DependencyUnavailable) -> MCPError:
    return MCPError(
        DEPENDENCY_UNAVAILABLE,
        f"{outage}; try again in {outage.retry_after} s",
        {"dependency": outage.dependency, "retryAfterSeconds": outage.retry_after},
    )


class OutageBoundary:
    """Server middleware: a dependency outage in any handler is answered
    `DEPENDENCY_UNAVAILABLE` (not the SDK's -32603 "Internal server error")
    and reported to ``seen`` (which audits it)."""

    def __init__(
        self, seen: Callable[[ServerRequestContext, DependencyUnavailable], Awaitable[None]]
    ) -> None:
        self._seen = seen

    async def __call__(self, ctx: ServerRequestContext, call_next: CallNext) -> HandlerResult:
        try:
            return await call_next(ctx)
        except MCPError:
            raise
        except Exception as exc:
            # An A2A handler's outage (an agent's skill called as a tool) too.
            outage = exc.outage if isinstance(exc, DependencyUnavailableError) else outage_of(exc)
            if outage is None:
                raise
            await self._seen(ctx, outage)
            raise unavailable(outage) from None


def caller_of(ctx: ServerRequestContext) -> Caller:
    """The caller `McpAuth` established for the HTTP request carrying this message."""
    request = ctx.request
    caller = getattr(request, "scope", {}).get(CALLER_KEY) if request is not None else None
    caller = caller or current_caller.get()
    if caller is None:  # unreachable behind McpAuth; refuse rather than guess
        raise MCPError(types.INVALID_REQUEST, "not authenticated")
    return caller


def trace_of(ctx: ServerRequestContext) -> str:
    """The trace id of this message: the `traceparent` its ``params._meta``
    carries (OpenTelemetry's MCP conventions), else the one of the HTTP
    request carrying it (each message's own, in a 2025-11-25 session too),
    else a fresh one; the upstream calls made for it carry that trace. Called
    in the task the SDK runs this one message's handler in, so the trace set
    is this message's alone (`adapters.trace_context`)."""
    return enter_trace(of_message(ctx.meta, getattr(ctx.request, "headers", None)))


def outage_record(ctx: ServerRequestContext, outage: DependencyUnavailable) -> AuditEvent:
    """The audit record of a request a dependency outage refused: its caller,
    when known, and its trace."""
    try:
        caller: Caller | None = caller_of(ctx)
    except MCPError:
        caller = None
    detail = f"{ctx.method}: {outage}"
    trace = trace_of(ctx)
    if caller is None:
        return outage_event("mcp", trace, detail)
    return outage_event(
        "mcp",
        trace,
        detail,
        subject=caller.subject,
        issuer=caller.issuer,
        client_id=caller.client_id,
        actors=caller.actors,
    )
