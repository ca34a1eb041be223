"""An upstream whose users connect their own accounts, and what the
gateway's requests to its authorization server are made of: the PKCE
challenge, the scope kept to what the server offers, the client registered
out of band, and whether a connection's tokens were issued for it."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from mcp.shared.auth import OAuthClientInformationFull
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url

from gateway.connections.connection import Connection
from gateway.connections.discovery import Discovered
from policies.card_oauth import CardAuthorization


@dataclass(frozen=True)
class Upstream:
    """An upstream whose users connect their own accounts (`user_oauth`)."""

    id: str
    url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None
    # An A2A agent's card scheme (`card_oauth`): where its users get tokens.
    # None: an MCP server, found by MCP authorization's discovery.
    authorization: CardAuthorization | None = None
    # A vendor agent's authorization server, named at its registration (its
    # issuer URL); None: discovered from the upstream (RFC 9728).
    issuer: str | None = None
    # Discovery may send the upstream an unauthenticated request for its 401
    # (RFC 9728 §5.1); False: the well-known metadata URLs only.
    probe: bool = True


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def kept_to_offered(scope: str | None, found: Discovered) -> str | None:
    """``scope`` kept to the server's `scopes_supported`, when it lists them."""
    supported = found.metadata.scopes_supported
    if scope is None or not supported:
        return scope
    return " ".join(s for s in scope.split() if s in supported) or None


def issued_for(connection: Connection, upstream: Upstream) -> bool:
    """The connection's tokens were issued for this server's URL (RFC 8707):
    never sent to another server registered under the same id since."""
    resource = connection.resource
    return resource is not None and check_resource_allowed(
        requested_resource=resource_url_from_server_url(upstream.url),
        configured_resource=resource,
    )


def configured_client(upstream: Upstream) -> OAuthClientInformationFull:
    """A client registered out of band (RFC 6749 §2.3.1: its secret by HTTP Basic)."""
    assert upstream.client_id is not None
    return OAuthClientInformationFull(
        client_id=upstream.client_id,
        client_secret=upstream.client_secret,
        token_endpoint_auth_method="client_secret_basic" if upstream.client_secret else "none",
    )
