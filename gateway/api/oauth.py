"""The gateway as an OAuth authorization server for agents: RFC 8693 token
exchange at `/oauth/token` and RFC 8414 metadata describing it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from adapters.trace_context import begin as begin_trace
from gateway.api.state import state_of
from gateway.delegation.token_exchange import ExchangeContext
from policies.exchange import (
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    OAuthError,
    parse_exchange,
    parse_form,
)
from policies.jws import ASYMMETRIC_ALGORITHMS

router = APIRouter(tags=["oauth"])
# RFC 6749 §5.1: token responses MUST NOT be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/oauth/token", summary="RFC 8693 token exchange for agents delegating onwards")
async def token(request: Request) -> JSONResponse:
    state = state_of(request)
    try:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise OAuthError(
                "invalid_request", "send the parameters as application/x-www-form-urlencoded"
            )
        exchange_request = parse_exchange(parse_form(await request.body()))
        result = await state.token_exchange.exchange(
            exchange_request,
            ExchangeContext(
                basic_authorization=request.headers.get("authorization"),
                trace_id=begin_trace(request.headers),
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
