"""The vendor's OAuth authorization server (`gateway.demo.vendor`): the
in-memory state behind the SDK's AS handlers -- clients, codes, access and
refresh tokens with rotation, SEP-990 identity assertions -- and the MCP
server's token verifier over the same records (RFC 8707: a token issued for
another resource is refused)."""

from __future__ import annotations

import contextvars
import json
import secrets
import time
from typing import Any, Protocol

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from policies.jws import JWSInvalid, verify_compact

CODE_SECONDS = 300

# The vendor user the current /authorize request is logged in as (set from the cookie).
logged_in: contextvars.ContextVar[str | None] = contextvars.ContextVar("vendor_user", default=None)


class VendorSettings(Protocol):
    """What the authorization server reads of its vendor (`gateway.demo.vendor.Vendor`),
    and the records it keeps there for the tests."""

    access_seconds: int
    scopes: tuple[str, ...]
    send_iss: bool
    trusted_idp: tuple[str, dict[str, Any]] | None
    assertions: list[dict[str, Any]]
    mcp_url: str
    issuer: str
    revoked: list[str]


class Provider:
    """The in-memory state behind the SDK's AS handlers (an `OAuthAuthorizationServerProvider`)."""

    def __init__(self, vendor: VendorSettings) -> None:
        self.vendor = vendor
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.pairs: dict[str, str] = {}  # access token <-> its refresh token, both ways

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.clients[client_info.client_id] = client_info

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        user = logged_in.get()
        if user is None:  # the ASGI wrapper refuses this earlier; kept as a guard
            raise AuthorizeError("access_denied", "not logged in at the vendor")
        assert client.client_id is not None
        code = secrets.token_urlsafe(32)
        scopes = params.scopes or (client.scope or " ".join(self.vendor.scopes)).split()
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=scopes,
            expires_at=time.time() + CODE_SECONDS,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject=user,
        )
        iss = self.vendor.issuer if self.vendor.send_iss else None
        return construct_redirect_uri(
            str(params.redirect_uri), code=code, state=params.state, iss=iss
        )

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        return self.codes.get(authorization_code)

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        del self.codes[authorization_code.code]  # single use
        return self.issue(authorization_code)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        return self.refresh.get(refresh_token)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        self.refresh.pop(refresh_token.token, None)  # rotation: the old one stops working
        return self.issue(refresh_token.model_copy(update={"scopes": scopes}))

    async def load_access_token(self, token: str) -> AccessToken | None:
        return self.access.get(token)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.vendor.revoked.append(token.token)
        for value in (token.token, self.pairs.pop(token.token, "")):
            self.access.pop(value, None)
            self.refresh.pop(value, None)
            self.pairs.pop(value, None)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        """SEP-990 leg 2: an ID-JAG from the identity provider this vendor
        trusts (`Vendor.trusted_idp`), checked as its §5.1 says: signature,
        ``typ``, issuer, audience (this server), expiry, and that it names the
        client presenting it."""
        trusted = self.vendor.trusted_idp
        if trusted is None:
            raise TokenError("unsupported_grant_type")  # SEP-990 is not offered
        issuer, public_jwk = trusted
        try:
            header, payload = verify_compact(params.assertion, public_jwk)
            claims = json.loads(payload)
        except (JWSInvalid, ValueError):
            raise TokenError("invalid_grant", "the assertion's signature is not valid") from None
        if (
            header.get("typ") != "oauth-id-jag+jwt"
            or claims.get("iss") != issuer
            or claims.get("aud") != self.vendor.issuer
            or not isinstance(claims.get("exp"), int | float)
            or claims["exp"] < time.time()
            or claims.get("client_id") != client.client_id
            or not isinstance(claims.get("sub"), str)
        ):
            raise TokenError("invalid_grant", "the assertion is not for this server or client")
        self.vendor.assertions.append(claims)
        assert client.client_id is not None
        scopes = params.scopes or str(claims.get("scope") or "").split()
        return self.issue(
            RefreshToken(
                token="",
                client_id=client.client_id,
                scopes=scopes,
                resource=params.resource,
                subject=claims["sub"],
            )
        )

    def issue(self, grant: AuthorizationCode | RefreshToken) -> OAuthToken:
        """An access token and its refresh token for ``grant``, each naming the other."""
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        seconds = self.vendor.access_seconds
        common: dict[str, Any] = {
            "client_id": grant.client_id,
            "scopes": grant.scopes,
            "resource": grant.resource,
            "subject": grant.subject,
        }
        self.access[access] = AccessToken(
            token=access,
            expires_at=int(time.time()) + seconds,
            claims={"iss": self.vendor.issuer},
            **common,
        )
        self.refresh[refresh] = RefreshToken(token=refresh, **common)
        self.pairs[access], self.pairs[refresh] = refresh, access
        return OAuthToken(
            access_token=access,
            token_type="Bearer",  # noqa: S106 - the token type's name
            expires_in=seconds,
            scope=" ".join(grant.scopes),
            refresh_token=refresh,
        )


class Verifier:
    """The MCP server's `TokenVerifier`: the AS's own records, shared in-process."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def verify_token(self, token: str) -> AccessToken | None:
        found = self.provider.access.get(token)
        if found is None or found.resource is None:
            return found
        ok = found.resource.rstrip("/") == self.provider.vendor.mcp_url
        return found if ok else None  # issued for another resource (RFC 8707)
