"""The gateway as a client of an upstream's authorization server
(`gateway.connections.service` connects users through it): where the server
is (discovery), which client the gateway is there -- in the MCP
specification's order (2025-11-25, "Client Registration"): registered out of
band, its Client ID Metadata Document, else registered dynamically (RFC 7591)
and kept -- its redirect URI per upstream, and revoking what a connection
was granted (RFC 7009)."""

from __future__ import annotations

from urllib.parse import quote

import httpx2
from mcp.client.auth.utils import create_client_info_from_metadata_url
from mcp.shared.auth import OAuthClientInformationFull

from gateway.connections import oauth
from gateway.connections.connection import Connection
from gateway.connections.discovery import (
    Discovered,
    discover,
    discover_at_issuer,
    discover_from_card,
)
from gateway.connections.errors import ConnectFailed
from gateway.connections.pending import Pending
from gateway.connections.upstream import Upstream, configured_client
from gateway.connections.vault import Vault

CLIENT_METADATA_PATH = "/oauth/client-metadata.json"


class OAuthClients:
    def __init__(
        self, vault: Vault, http: httpx2.AsyncClient, public_url: str, *, allow_http: bool
    ) -> None:
        """``allow_http``: authorization servers on plain http (``--dev`` only)."""
        self._vault = vault
        self._http = http
        self._public_url = public_url
        self._allow_http = allow_http
        # CIMD needs a client id the authorization server can fetch: https only.
        self.metadata_url = (
            public_url + CLIENT_METADATA_PATH if public_url.startswith("https://") else None
        )

    def redirect_uri(self, upstream: str) -> str:
        """Each upstream its own redirect URI: the answer to a request sent to
        one authorization server can never be taken for another's -- the
        mix-up attack (RFC 9700 §4.4.2), whatever the server says of `iss`."""
        return f"{self._public_url}/ui/connections/{quote(upstream, safe='')}/callback"

    def metadata(self, upstreams: list[str]) -> dict[str, object]:
        """The gateway's Client ID Metadata Document (served at its own URL),
        listing the redirect URI of every ``user_oauth`` upstream."""
        redirects = [self.redirect_uri(u) for u in upstreams] or [self.redirect_uri("-")]
        document = oauth.client_metadata(redirects[0], None).model_dump(
            mode="json", exclude_none=True
        )
        document["redirect_uris"] = redirects
        document["token_endpoint_auth_method"] = "none"  # noqa: S105 - a method's name
        document["client_id"] = self.metadata_url
        return document

    async def discover(self, upstream: Upstream) -> Discovered:
        if upstream.authorization is not None:
            return await discover_from_card(
                self._http, upstream.url, upstream.authorization, allow_http=self._allow_http
            )
        if upstream.issuer is not None:
            return await discover_at_issuer(
                self._http, upstream.url, upstream.issuer, allow_http=self._allow_http
            )
        return await discover(
            self._http, upstream.url, allow_http=self._allow_http, probe=upstream.probe
        )

    async def chosen(
        self, upstream: Upstream, found: Discovered, *, may_register: bool
    ) -> OAuthClientInformationFull:
        if upstream.client_id is not None:
            return configured_client(upstream)
        if self.metadata_url and found.metadata.client_id_metadata_document_supported:
            return create_client_info_from_metadata_url(self.metadata_url)
        kept = await self._vault.registered_client(upstream.id, found.issuer)
        if kept is not None:
            return kept
        if not may_register:
            raise ConnectFailed("the gateway's registration at the authorization server is gone")
        # Registered for every scope the server offers: a registration's scope
        # is what the client may ever ask for (RFC 7591 §2), and a step-up
        # later asks for more than the first user did. Each user's own
        # authorization asks for the least (`begin`).
        offered = " ".join(found.metadata.scopes_supported or ()) or None
        client = await oauth.register(
            self._http,
            found,
            oauth.client_metadata(
                self.redirect_uri(upstream.id),
                offered or upstream.scope or found.scope,
                oauth.auth_method(found.metadata),
            ),
        )
        # Two users connecting first at once: the first registration kept wins.
        return await self._vault.keep_client(upstream.id, found.issuer, client)

    async def resolved(self, upstream: Upstream, pending: Pending) -> OAuthClientInformationFull:
        if upstream.client_id is not None and upstream.client_id == pending.client_id:
            return configured_client(upstream)
        if self.metadata_url and pending.client_id == self.metadata_url:
            return create_client_info_from_metadata_url(self.metadata_url)
        kept = await self._vault.registered_client(upstream.id, pending.authorization_server)
        if kept is None or kept.client_id != pending.client_id:
            raise ConnectFailed("the upstream's client changed while connecting: start again")
        return kept

    async def revoke(self, connection: Connection) -> bool:
        """RFC 7009: the refresh token (which revokes its access tokens, §2.1)
        else the access token. Best effort: the vault has forgotten them already."""
        if connection.revocation_endpoint is None:
            return False
        token, hint = (
            (connection.refresh_token, "refresh_token")
            if connection.refresh_token
            else (connection.access_token, "access_token")
        )
        return await oauth.revoke(
            self._http,
            revocation_endpoint=connection.revocation_endpoint,
            client=connection.client,
            token=token,
            hint=hint,
        )
