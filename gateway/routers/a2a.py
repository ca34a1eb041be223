"""The A2A front door, JSON-RPC binding: `POST /a2a/{agent_id}` (and with a
trailing slash, which the TCK's client uses).

A router holds no logic: it decodes the JSON-RPC envelope, runs the one
pipeline (authenticate, decide, mint, call, record) and encodes the answer.
This first cut forwards `SendMessage`; the other A2A operations follow.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from adapters.a2a import UpstreamError, UpstreamResponse, jsonrpc_interface
from gateway.audit import trace_id_from
from gateway.auth import CurrentPrincipal
from gateway.pipeline import ApprovalRequired, Caller, DelegationDenied, Grant
from gateway.state import state_of
from registry.store import AgentNotFound

router = APIRouter(prefix="/a2a", tags=["a2a"])

# JSON-RPC 2.0 §5.1 and A2A 1.0 §9.5.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603
# Implementation-defined server error (JSON-RPC reserves -32000..-32099;
# A2A uses -32001..-32009): the gateway refused to delegate.
DELEGATION_REFUSED = -32000
FORWARDED_METHODS = frozenset({"SendMessage"})


def _error(
    request_id: Any, code: int, message: str, status: int = 200, data: Any = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=status)


@router.post("/{agent_id}", summary="A2A JSON-RPC endpoint for one registered agent")
@router.post("/{agent_id}/", include_in_schema=False)
async def jsonrpc(request: Request, agent_id: str, principal: CurrentPrincipal) -> Response:
    body = await request.body()
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        return _error(None, PARSE_ERROR, "request body is not valid JSON")
    if (
        not isinstance(envelope, dict)
        or envelope.get("jsonrpc") != "2.0"
        or not isinstance(envelope.get("method"), str)
    ):
        return _error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 request")
    request_id = envelope.get("id")
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = None
    method = envelope["method"]
    if method not in FORWARDED_METHODS:
        return _error(request_id, METHOD_NOT_FOUND, f"method {method} is not supported here")

    state = state_of(request)

    async def call(grant: Grant) -> UpstreamResponse:
        url = jsonrpc_interface(grant.card)
        return await state.a2a_client.post(url, body, grant.token.token)

    try:
        upstream = await state.delegations.delegate(
            Caller.user(principal),
            agent_id,
            call,
            trace_id=trace_id_from(request.headers.get("traceparent")),
            outcome_of=lambda r: "ok" if r.status < 400 else f"upstream_http_{r.status}",
        )
    except AgentNotFound:
        return _error(request_id, DELEGATION_REFUSED, f"no agent {agent_id}", status=404)
    except ApprovalRequired as pending:
        return _error(
            request_id,
            DELEGATION_REFUSED,
            "delegation needs human approval, which this gateway cannot collect yet: "
            + "; ".join(pending.decision.reasons),
            status=403,
            data={"reasons": list(pending.decision.reasons), "approval_required": True},
        )
    except DelegationDenied as denied:
        return _error(
            request_id,
            DELEGATION_REFUSED,
            "delegation refused: " + "; ".join(denied.decision.reasons),
            status=403,
            data={"reasons": list(denied.decision.reasons)},
        )
    except UpstreamError as exc:
        return _error(request_id, INTERNAL_ERROR, f"upstream agent {agent_id}: {exc}", status=502)
    if not upstream.content_type.startswith("application/json"):
        return _error(
            request_id, INTERNAL_ERROR, f"upstream agent {agent_id} answered {upstream.status}"
        )
    return Response(upstream.body, status_code=upstream.status, media_type="application/json")
