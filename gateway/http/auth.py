"""Bearer authentication for the gateway's own API (RFC 6750, RFC 9728).

A missing or bad token gets 401 with `WWW-Authenticate: Bearer` naming the
protected resource metadata, so a client can discover where to get a token;
a valid token without the needed scope gets 403 `insufficient_scope`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.http.problems import Problem
from gateway.settings import Settings
from policies.api_keys import looks_like_key
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal, TokenInvalid, TokenVerifier

PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"
security = logging.getLogger("switchboard.security")
# How the OpenAPI document names the scheme (`gateway.http.openapi`). It never
# refuses anything itself (auto_error off): `authenticate` decides, and answers
# with the problem documents and challenges below.
BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An access token for the gateway (RFC 6750), e.g. a dev token; or an "
    "API key (sk-sb-…), here or as the X-Api-Key header.",
    auto_error=False,
)


class KeyVerifier(Protocol):
    """API keys (`gateway.delegation.api_keys.ApiKeys`): the principal a key is."""

    async def verify(self, key: str) -> Principal: ...


@dataclass(frozen=True)
class RequestAuth:
    """What authenticating a request needs. `gateway.app` puts it on the app's
    state once the lifespan has built the verifier; every door (the REST API,
    `/a2a` over HTTP and gRPC, `/mcp` and its sets) reads it from there, so
    this layer knows none of them."""

    settings: Settings
    verifier: TokenVerifier
    api_keys: KeyVerifier | None = None

    def install(self, app: Any) -> None:
        app.state.request_auth = self

    async def verify(
        self, token: str, *, audience: str | None = None, issuer: str | None = None
    ) -> Principal:
        """The one place a credential becomes a principal, for every door: an
        API key (``sk-sb-…``, `policies.api_keys`) is judged as a key only --
        never tried as a JWT, and good for the whole gateway whatever
        ``audience`` a door would take tokens for; anything else is a token."""
        if looks_like_key(token):
            if self.api_keys is None:
                raise TokenInvalid("API key is unknown")
            return await self.api_keys.verify(token)
        return await self.verifier.verify(token, audience=audience, issuer=issuer)


def request_auth(request: Request) -> RequestAuth:
    auth: RequestAuth = request.app.state.request_auth
    return auth


def challenge(
    request: Request,
    error: str | None,
    description: str | None,
    scope: str | None,
    *,
    resource_path: str = "",
) -> str:
    """The `WWW-Authenticate` value naming the metadata of the resource at
    ``resource_path`` (RFC 9728 §3.1: the well-known path, then the resource's)."""
    settings = request_auth(request).settings
    metadata_url = settings.effective_public_url + PROTECTED_RESOURCE_PATH + resource_path
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


async def current_principal(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Principal:
    return await authenticate(request)


async def authenticate(
    request: Request, *, resource_path: str = "", audiences: tuple[str, ...] = ()
) -> Principal:
    """Verify the bearer token; 401 with a challenge naming the metadata of the
    resource at ``resource_path``. A token for the gateway's own audience is
    accepted, and so is one for any of ``audiences`` (RFC 8707 resource
    indicators naming a sub-resource, e.g. the MCP endpoint)."""
    token = bearer_token(request, resource_path)
    try:
        return await _verified(request_auth(request), token, audiences)
    except TokenInvalid as exc:
        raise refused(request, exc, resource_path) from None


API_KEY_HEADER = "x-api-key"


class CredentialHeaderError(Exception):
    """No usable credential in a request; ``str()`` is what the caller is told."""

    def __init__(self, detail: str, *, malformed: bool) -> None:
        super().__init__(detail)
        self.malformed = malformed  # False: none was sent at all


def credential_of(authorizations: list[str], api_keys: list[str]) -> str:
    """The one credential a request carries: ``Authorization: Bearer <token>``
    (RFC 6750 §2.1) or ``X-Api-Key: <key>``. Two are refused, not chosen
    between -- two ``Authorization`` lines (RFC 9110 §5.3: a field that is
    not a list is sent once), two ``X-Api-Key`` lines, or both naming
    different credentials: a proxy adding one must not decide who calls."""
    if len(authorizations) > 1:
        raise CredentialHeaderError("send one Authorization header", malformed=True)
    if len(api_keys) > 1:
        raise CredentialHeaderError("send one X-Api-Key header", malformed=True)
    authorization = authorizations[0] if authorizations else None
    api_key = api_keys[0].strip() if api_keys else None
    if api_key is not None and not api_key:
        raise CredentialHeaderError("the X-Api-Key header is empty", malformed=True)
    token: str | None = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        token = value.strip()
        if scheme.lower() != "bearer" or not token:
            raise CredentialHeaderError(
                "the Authorization header must be 'Bearer <token>'", malformed=True
            )
    if token is not None and api_key is not None and token != api_key:
        raise CredentialHeaderError(
            "Authorization and X-Api-Key carry different credentials", malformed=True
        )
    credential = token or api_key
    if credential is None:
        raise CredentialHeaderError(
            "send an access token as 'Authorization: Bearer <token>' "
            "(or an API key as 'X-Api-Key: <key>')",
            malformed=False,
        )
    return credential


def bearer_token(request: Request, resource_path: str = "") -> str:
    """The request's credential (`credential_of`); 401 when there is none
    (RFC 6750 §3) or it is malformed."""
    try:
        return credential_of(
            request.headers.getlist("authorization"), request.headers.getlist(API_KEY_HEADER)
        )
    except CredentialHeaderError as exc:
        error, description = ("invalid_request", str(exc)) if exc.malformed else (None, None)
        raise Problem(
            401,
            "invalid-token" if exc.malformed else "unauthenticated",
            "Invalid token" if exc.malformed else "Authentication required",
            str(exc),
            headers={
                "WWW-Authenticate": challenge(
                    request, error, description, None, resource_path=resource_path
                )
            },
        ) from None


async def _verified(auth: RequestAuth, token: str, audiences: tuple[str, ...]) -> Principal:
    try:
        return await auth.verify(token)
    except TokenInvalid as first:
        if looks_like_key(token):
            raise
        for audience in audiences:
            with contextlib.suppress(TokenInvalid):
                return await auth.verifier.verify(token, audience=audience)
        raise first from None


def refused(request: Request, exc: TokenInvalid, resource_path: str = "") -> Problem:
    """The 401 for a token that was refused, and its security log line: written
    here, once the request is refused, and never while another way of
    accepting the token is still to be tried (a token exchanged for an agent's
    front door first fails as a token for the gateway)."""
    # The reason only: never the token.
    security.warning("authentication failed on %s: %s", request.url.path, exc)
    return Problem(
        401,
        "invalid-token",
        "Invalid token",
        str(exc),
        headers={
            "WWW-Authenticate": challenge(
                request, "invalid_token", str(exc), None, resource_path=resource_path
            )
        },
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def front_door_principal(request: Request, front_door_url: str) -> tuple[Principal, bool]:
    """The caller of an agent's front door (``…/a2a/{id}``), and whether it is
    an agent delegating onwards.

    A user's token for the gateway is accepted as everywhere. So is a token
    this gateway minted by token exchange *for this front door* (RFC 8707: the
    agent asked for ``resource=…/a2a/{id}``): the agent that exchanged it
    calls on the user's behalf, its actor chain in ``act``. A token minted for
    an agent itself (aud = the agent's resource) is never one of these, so an
    agent cannot re-enter the gateway with the token it received.
    """
    token = bearer_token(request)
    auth = request_auth(request)
    try:
        return await auth.verify(token), False
    except TokenInvalid as first:
        if looks_like_key(token):
            raise refused(request, first) from None
        try:
            return await onwards_principal(auth, token, front_door_url)
        except TokenInvalid:
            raise refused(request, first) from None


async def onwards_principal(
    auth: RequestAuth, token: str, front_door_url: str
) -> tuple[Principal, bool]:
    """The second half of `front_door_principal`, for a door without a
    Starlette request (gRPC): a token minted by this gateway for the front
    door ``front_door_url``, carrying the actor chain. Raises TokenInvalid."""
    principal = await auth.verifier.verify(
        token, audience=front_door_url, issuer=auth.settings.effective_public_url
    )
    if "act" not in principal.claims:
        raise TokenInvalid("not a token for this gateway, nor one exchanged for this agent")
    return principal, True


async def admin_principal(request: Request, principal: CurrentPrincipal) -> Principal:
    if not principal.has_scope(ADMIN_SCOPE):
        raise Problem(
            403,
            "insufficient-scope",
            "Insufficient scope",
            f"this operation needs the scope {ADMIN_SCOPE}",
            headers={
                "WWW-Authenticate": challenge(
                    request, "insufficient_scope", f"requires {ADMIN_SCOPE}", ADMIN_SCOPE
                )
            },
        )
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
