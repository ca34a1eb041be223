"""Where a user of an upstream gets a token for it (`gateway.connections.oauth`,
the exchanges that follow): MCP authorization's discovery (2025-11-25,
"Authorization Server Discovery") -- the 401's `resource_metadata`, the
protected resource metadata (RFC 9728, with the well-known fallbacks), its
authorization server's metadata (RFC 8414 / OIDC discovery, issuer checked,
§3.3) -- or the authorization server an A2A card names, or a configured
issuer's. An authorization server that does not offer `S256` is refused
(OAuth 2.1 §7.5.2). Every request goes through the upstream's SSRF-checked
client; a redirect is never followed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import httpx2
from mcp.client.auth.exceptions import OAuthFlowError
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    get_client_metadata_scopes,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    validate_metadata_issuer,
)
from mcp.shared.auth import (
    OAuthMetadata,
    ProtectedResourceMetadata,
)
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url

from gateway.connections.errors import ConnectFailed
from policies.card_oauth import CardAuthorization

_PROBE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "switchboard", "version": "1"},
    },
}
_HEADERS = {"Accept": "application/json, text/event-stream"}


@dataclass(frozen=True)
class Discovered:
    """Where a user of one upstream gets a token for it, and what to ask for."""

    metadata: OAuthMetadata
    resource: str  # RFC 8707: the resource the token is asked for
    scope: str | None  # what the upstream says it needs, unless configured

    @property
    def issuer(self) -> str:
        return str(self.metadata.issuer)


async def _get(http: httpx2.AsyncClient, url: str) -> httpx2.Response:
    try:
        return await http.get(url, headers={"Accept": "application/json"})
    except httpx2.HTTPError as exc:
        raise ConnectFailed(f"{url}: {type(exc).__name__}: {exc}") from None


async def discover(
    http: httpx2.AsyncClient, server_url: str, *, allow_http: bool = False, probe: bool = True
) -> Discovered:
    """``allow_http``: endpoints may be plain http (a ``--dev`` gateway only).
    ``probe``: ask the server for its 401 first (an MCP `initialize`);
    False: read its metadata at the well-known URLs only."""
    challenged_scope: str | None = None
    pointer: str | None = None
    if probe:
        try:
            answer = await http.post(server_url, json=_PROBE, headers=_HEADERS)
        except httpx2.HTTPError as exc:
            raise ConnectFailed(f"the server at {server_url} cannot be reached: {exc}") from None
        if answer.status_code == 401:
            challenged_scope = extract_scope_from_www_auth(answer)
            pointer = extract_resource_metadata_from_www_auth(answer)
    prm: ProtectedResourceMetadata | None = None
    for url in build_protected_resource_metadata_discovery_urls(pointer, server_url):
        prm = await handle_protected_resource_response(await _get(http, url))
        if prm is not None:
            break
    if prm is None or not prm.authorization_servers:
        raise ConnectFailed(
            f"the server at {server_url} publishes no protected resource metadata "
            "naming an authorization server (RFC 9728)"
        )
    default_resource = resource_url_from_server_url(server_url)
    resource = str(prm.resource) if prm.resource else default_resource
    if not check_resource_allowed(
        requested_resource=default_resource, configured_resource=resource
    ):
        # RFC 9728 §3.3: metadata for another resource is not this server's.
        raise ConnectFailed(f"the server's metadata names another resource ({resource})")
    issuer = str(prm.authorization_servers[0])
    metadata: OAuthMetadata | None = None
    for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, server_url):
        ok, found = await handle_auth_metadata_response(await _get(http, url))
        if not ok:
            break
        if found is not None:
            metadata = found
            break
    if metadata is None:
        raise ConnectFailed(f"the authorization server {issuer} publishes no metadata (RFC 8414)")
    _check(metadata, issuer, allow_http)
    scope = get_client_metadata_scopes(
        challenged_scope, prm, metadata, ["authorization_code", "refresh_token"]
    )
    return Discovered(metadata, resource, scope)


def _check(metadata: OAuthMetadata, issuer: str, allow_http: bool) -> None:
    """The authorization server's metadata is its issuer's (RFC 8414 §3.3),
    on https (outside ``--dev``), with PKCE S256 (OAuth 2.1 §7.5.2)."""
    try:
        validate_metadata_issuer(metadata, issuer)
    except OAuthFlowError as exc:
        raise ConnectFailed(str(exc)) from None
    if not allow_http:
        for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint"):
            endpoint = getattr(metadata, name)
            if endpoint is not None and str(endpoint).split(":", 1)[0] != "https":
                raise ConnectFailed(
                    f"the authorization server's {name} is not https: "
                    "the gateway sends no user there, nor any secret"
                )
    if "S256" not in (metadata.code_challenge_methods_supported or ()):
        raise ConnectFailed(
            f"the authorization server {issuer} does not offer PKCE with S256: "
            "the gateway does not connect accounts without it"
        )


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


async def discover_from_card(
    http: httpx2.AsyncClient,
    agent_url: str,
    card: CardAuthorization,
    *,
    allow_http: bool = False,
) -> Discovered:
    """An A2A agent's authorization server, from its card's OAuth2 scheme
    (A2A 1.0 §4.5.4 OAuth2SecurityScheme). The card's `oauth2MetadataUrl`,
    else RFC 8414's well-known URLs at the authorization URL's origin (the
    issuer a card cannot name otherwise). The metadata is required: without
    it the gateway cannot know that the server does PKCE S256, and the
    card's own endpoints must be the ones the metadata names -- a card
    cannot send users to one server and their codes to another."""
    if card.metadata_url is not None:
        urls = [card.metadata_url]
    else:
        parsed = urlparse(card.authorization_url)
        origin = f"{parsed.scheme}://{parsed.netloc}"
        urls = build_oauth_authorization_server_metadata_discovery_urls(origin, agent_url)
    metadata: OAuthMetadata | None = None
    answered = ""
    for url in urls:
        ok, found = await handle_auth_metadata_response(await _get(http, url))
        if found is not None:
            metadata, answered = found, url
            break
        if not ok:
            break
    if metadata is None:
        raise ConnectFailed(
            f"the authorization server at {card.authorization_url} publishes no metadata "
            "(RFC 8414): the gateway does not connect accounts without it"
        )
    issuer = str(metadata.issuer)
    if not any(
        _same_url(answered, u)
        for u in build_oauth_authorization_server_metadata_discovery_urls(issuer, agent_url)
    ):
        # RFC 8414 §3.3: the metadata is the issuer's only at the issuer's URL.
        raise ConnectFailed(f"the metadata at {answered} is not its issuer's ({issuer})")
    _check(metadata, issuer, allow_http)
    if not _same_url(str(metadata.authorization_endpoint), card.authorization_url) or not (
        _same_url(str(metadata.token_endpoint), card.token_url)
    ):
        raise ConnectFailed(
            "the agent card's authorizationUrl and tokenUrl are not the ones its "
            f"authorization server {issuer} publishes"
        )
    return Discovered(metadata, resource_url_from_server_url(agent_url), card.scope)


async def discover_at_issuer(
    http: httpx2.AsyncClient, server_url: str, issuer: str, *, allow_http: bool = False
) -> Discovered:
    """The authorization server named at a vendor agent's registration: its
    metadata read at its issuer's well-known URLs (RFC 8414 §3, then OIDC
    discovery), issuer checked (§3.3), PKCE S256 required. The scope is the
    registration's (none said: what the user consents to by default)."""
    if not allow_http and not issuer.startswith("https://"):
        raise ConnectFailed(f"the authorization server {issuer} is not https")
    metadata: OAuthMetadata | None = None
    for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, server_url):
        ok, found = await handle_auth_metadata_response(await _get(http, url))
        if found is not None:
            metadata = found
            break
        if not ok:
            break
    if metadata is None:
        raise ConnectFailed(f"the authorization server {issuer} publishes no metadata (RFC 8414)")
    _check(metadata, issuer, allow_http)
    return Discovered(metadata, resource_url_from_server_url(server_url), None)
