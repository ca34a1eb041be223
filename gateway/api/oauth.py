"""The gateway as an OAuth authorization server for agents: RFC 8693 token
exchange at `/oauth/token` and RFC 8414 metadata describing it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from adapters.trace_context import begin as begin_trace
from gateway.api.state import state_of
from gateway.delegation.audit_records import outage_event
from gateway.delegation.token_exchange import ExchangeContext
from gateway.storage.outages import outage_of
from policies.exchange import (
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    OAuthError,
    parse_exchange,
    parse_form,
)
from policies.jws import ASYMMETRIC_ALGORITHMS

logger = logging.getLogger(__name__)
router = APIRouter(tags=["oauth"])
# RFC 6749 §5.1: token responses MUST NOT be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/oauth/token", summary="RFC 8693 token exchange for agents delegating onwards")
async def token(request: Request) -> JSONResponse:
    state = state_of(request)
    trace_id = ""
    try:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise OAuthError(
                "invalid_request", "send the parameters as application/x-www-form-urlencoded"
            )
        authorizations = request.headers.getlist("authorization")
        if len(authorizations) > 1:
            # As on every door (`gateway.http.auth.credential_of`): not chosen between.
            raise OAuthError("invalid_request", "send one Authorization header")
        exchange_request = parse_exchange(parse_form(await request.body()))
        trace_id = begin_trace(request.headers)
        result = await state.token_exchange.exchange(
            exchange_request,
            ExchangeContext(
                basic_authorization=authorizations[0] if authorizations else None,
                trace_id=trace_id,
            ),
        )
    except OAuthError as exc:
        headers = dict(_NO_STORE)
        if exc.status == 401:
            # RFC 6749 §5.2: invalid_client answered with 401 carries a challenge.
            headers["WWW-Authenticate"] = 'Basic realm="switchboard", charset="UTF-8"'
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            status_code=exc.status,
            headers=headers,
        )
    except Exception as exc:
        outage = outage_of(exc)
        if outage is None:
            raise
        logger.error("token exchange refused: %s", outage)
        # Kept in the audit buffer and written once the database is back.
        await state.delegations.record_event(outage_event("token_exchange", trace_id, str(outage)))
        # RFC 6749 §5.2 defines no error code for "try again later" at the
        # token endpoint; `temporarily_unavailable` is the code §4.1.2.1 gives
        # the authorization endpoint for exactly this (a server that cannot
        # answer for now), and OAuth clients already know it. The status is
        # 503 with Retry-After (RFC 9110 §15.6.4, §10.2.3), so generic HTTP
        # clients and load balancers retry too. It fails closed: no token is
        # issued without the checks the outage stopped.
        return JSONResponse(
            {
                "error": "temporarily_unavailable",
                "error_description": f"{outage}; try again in {outage.retry_after} s",
            },
            status_code=503,
            headers={**_NO_STORE, "Retry-After": str(outage.retry_after)},
        )
    return JSONResponse(result, headers=_NO_STORE)


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="OAuth 2.0 authorization server metadata (RFC 8414)",
)
async def authorization_server_metadata(request: Request) -> dict[str, Any]:
    settings = state_of(request).settings
    return {
        "issuer": settings.effective_public_url,
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": settings.effective_public_url + "/.well-known/jwks.json",
        "grant_types_supported": [TOKEN_EXCHANGE_GRANT],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGORITHMS),
        "response_types_supported": [],
        "actor_token_types_supported": [JWT_TOKEN_TYPE],
    }
