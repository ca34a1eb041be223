"""The OAuth exchanges of connecting an account, split at the browser's round trip.

The MCP SDK's `OAuthClientProvider` runs the whole authorization code flow
inside one request, waiting for a person in between; a gateway cannot (the
browser comes back to any replica, minutes later). So the flow is cut where
the browser leaves and comes back, and each half uses the SDK's own pieces
(`mcp.client.auth.utils`, `mcp.shared.auth`) for what it does:

* `discover()` (`gateway.connections.discovery`) -- MCP authorization
  (2025-11-25, "Authorization Server Discovery"): an unauthenticated
  request, the 401's `WWW-Authenticate` `resource_metadata`, the protected
  resource metadata (RFC 9728, with the well-known fallbacks), its
  authorization server's metadata (RFC 8414 / OIDC discovery, issuer
  checked, §3.3). An authorization server that does not list `S256` in
  `code_challenge_methods_supported` is refused: MCP clients MUST refuse to
  go on without PKCE (OAuth 2.1 §7.5.2).
* `register()` -- Dynamic Client Registration (RFC 7591), the registration
  checked usable (`check_registration_usable`).
* `exchange_code()`, `refresh()` -- the token endpoint (RFC 6749 §4.1.3,
  §6), with `code_verifier` (RFC 7636) and `resource` (RFC 8707), the client
  authenticated as its registration says (`OAuthContext.prepare_token_auth`).
* `revoke()` -- RFC 7009, where the server offers it.

Every request goes through the SSRF-checked client the upstream's own
connection uses; a redirect is never followed.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx2
from mcp.client.auth.exceptions import OAuthRegistrationError, OAuthTokenError
from mcp.client.auth.oauth2 import OAuthContext, check_registration_usable
from mcp.client.auth.utils import (
    create_client_registration_request,
    handle_registration_response,
    handle_token_response_scopes,
)
from mcp.shared.auth import (
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
)

from gateway.connections.discovery import Discovered
from gateway.connections.errors import ConnectFailed


def auth_method(metadata: OAuthMetadata | None) -> str:
    """How the gateway authenticates at the token endpoint: ``client_secret_post``
    where the server lists it (some servers' revocation endpoints read the
    secret from the form only), else ``client_secret_basic``, RFC 8414 §2's
    default when the server lists nothing."""
    offered = (metadata.token_endpoint_auth_methods_supported if metadata else None) or []
    return "client_secret_post" if "client_secret_post" in offered else "client_secret_basic"


def client_metadata(
    redirect_uri: str, scope: str | None, method: str = "client_secret_basic"
) -> OAuthClientMetadata:
    """What the gateway registers as (RFC 7591 §2): a confidential web client
    with one exact redirect URI."""
    return OAuthClientMetadata.model_validate(
        {
            "redirect_uris": [redirect_uri],
            "client_name": "Switchboard",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "application_type": "web",
            "scope": scope,
        }
    )


async def register(
    http: httpx2.AsyncClient, found: Discovered, metadata: OAuthClientMetadata
) -> OAuthClientInformationFull:
    if found.metadata.registration_endpoint is None:
        raise ConnectFailed(
            f"the authorization server {found.issuer} offers no dynamic client registration: "
            "register a client there and give its client_id to the gateway"
        )
    request = create_client_registration_request(found.metadata, metadata, found.issuer)
    try:
        response = await http.send(request)
        client = await handle_registration_response(response)
        check_registration_usable(client)
    except httpx2.HTTPError as exc:
        raise ConnectFailed(f"client registration failed: {exc}") from None
    except OAuthRegistrationError as exc:
        # The SDK's message quotes the server's answer: shown, so kept short.
        raise ConnectFailed(str(exc)[:300]) from None
    client.issuer = found.issuer
    return client


def authorization_url(
    found: Discovered,
    client: OAuthClientInformationFull,
    *,
    redirect_uri: str,
    state: str,
    challenge: str,
    scope: str | None,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": found.resource,
    }
    if scope:
        params["scope"] = scope
    endpoint = str(found.metadata.authorization_endpoint)
    separator = "&" if urlparse(endpoint).query else "?"
    return endpoint + separator + urlencode(params)


async def _token_request(
    http: httpx2.AsyncClient,
    token_endpoint: str,
    client: OAuthClientInformationFull,
    form: dict[str, str],
) -> httpx2.Response:
    context = OAuthContext(
        server_url=token_endpoint,
        client_metadata=OAuthClientMetadata(redirect_uris=None),
        storage=None,  # type: ignore[arg-type]  # only its client-auth helper is used
        redirect_handler=None,
        callback_handler=None,
        client_info=client,
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    form, headers = context.prepare_token_auth({**form, "client_id": client.client_id}, headers)
    # The checked client sets each request's credential itself (`UpstreamAuth`,
    # which drops any other): the client's own authentication goes as the
    # request's `auth`, as the client-credentials grant's does.
    basic = headers.pop("Authorization", None)
    try:
        return await http.post(
            token_endpoint,
            data=form,
            headers=headers,
            auth=_ClientAuth(basic) if basic else httpx2.USE_CLIENT_DEFAULT,
        )
    except httpx2.HTTPError as exc:
        raise ConnectFailed(f"the token endpoint cannot be reached: {exc}") from None


class _ClientAuth(httpx2.Auth):
    """RFC 6749 §2.3.1 HTTP Basic, as `OAuthContext.prepare_token_auth` encoded it."""

    def __init__(self, value: str) -> None:
        self._value = value

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = self._value
        yield request


def _error_code(response: httpx2.Response) -> str | None:
    """RFC 6749 §5.2's ``error``, if the answer has a printable one."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error[:64] if isinstance(error, str) and error.isprintable() else None


async def _token(response: httpx2.Response) -> OAuthToken:
    if response.status_code != 200:
        error = _error_code(response)
        described = f" ({error})" if error else ""
        raise ConnectFailed(
            f"the token endpoint answered HTTP {response.status_code}{described}",
            # Only the grant's own refusal ends a connection: a refused client
            # (a wrong secret) or scope says nothing of the user's grant.
            refused=error == "invalid_grant",
        )
    try:
        token = await handle_token_response_scopes(response)
    except (OAuthTokenError, ValueError):
        raise ConnectFailed("the token endpoint's answer is not a bearer token") from None
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token.access_token):
        raise ConnectFailed("the token endpoint sent a token that cannot go in a header")
    return token


async def exchange_code(
    http: httpx2.AsyncClient,
    *,
    token_endpoint: str,
    client: OAuthClientInformationFull,
    code: str,
    verifier: str,
    redirect_uri: str,
    resource: str,
) -> OAuthToken:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "resource": resource,
    }
    return await _token(await _token_request(http, token_endpoint, client, form))


async def refresh(
    http: httpx2.AsyncClient,
    *,
    token_endpoint: str,
    client: OAuthClientInformationFull,
    refresh_token: str,
    resource: str | None,
) -> OAuthToken:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if resource:
        form["resource"] = resource
    return await _token(await _token_request(http, token_endpoint, client, form))


async def revoke(
    http: httpx2.AsyncClient,
    *,
    revocation_endpoint: str,
    client: OAuthClientInformationFull,
    token: str,
    hint: str,
) -> bool:
    """RFC 7009 §2.1; True when the server took it (200, §2.2)."""
    form = {"token": token, "token_type_hint": hint}
    try:
        response = await _token_request(http, revocation_endpoint, client, form)
    except ConnectFailed:
        return False
    return response.status_code == 200
