"""Bearer authentication for the gateway's own API (RFC 6750, RFC 9728).

A missing or bad token gets 401 with `WWW-Authenticate: Bearer` naming the
protected resource metadata, so a client can discover where to get a token;
a valid token without the needed scope gets 403 `insufficient_scope`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.errors import Problem
from gateway.state import state_of
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal, TokenInvalid

PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"


def _challenge(
    request: Request, error: str | None, description: str | None, scope: str | None
) -> str:
    metadata_url = state_of(request).settings.effective_public_url + PROTECTED_RESOURCE_PATH
    params = [f'resource_metadata="{metadata_url}"']
    if error:
        params.append(f'error="{error}"')
    if description:
        # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
        safe = "".join(c for c in description if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
        params.append(f'error_description="{safe}"')
    if scope:
        params.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(params)


async def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Problem(
            401,
            "unauthenticated",
            "Authentication required",
            "send an access token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": _challenge(request, None, None, None)},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "invalid-token",
            "Invalid token",
            "the Authorization header must be 'Bearer <token>'",
            headers={
                "WWW-Authenticate": _challenge(
                    request, "invalid_request", "expected a Bearer token", None
                )
            },
        )
    try:
        return await state_of(request).verifier.verify(token)
    except TokenInvalid as exc:
        raise Problem(
            401,
            "invalid-token",
            "Invalid token",
            str(exc),
            headers={"WWW-Authenticate": _challenge(request, "invalid_token", str(exc), None)},
        ) from None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def admin_principal(request: Request, principal: CurrentPrincipal) -> Principal:
    if not principal.has_scope(ADMIN_SCOPE):
        raise Problem(
            403,
            "insufficient-scope",
            "Insufficient scope",
            f"this operation needs the scope {ADMIN_SCOPE}",
            headers={
                "WWW-Authenticate": _challenge(
                    request, "insufficient_scope", f"requires {ADMIN_SCOPE}", ADMIN_SCOPE
                )
            },
        )
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
