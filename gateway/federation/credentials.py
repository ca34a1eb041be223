"""What the gateway presents to each MCP server: the credential configured for it.

Never the caller's token. Per server, one of:

* ``none``;
* ``static_header`` -- one header (an API key), opened from its sealed form;
* ``oauth_client_credentials`` -- the gateway's own token from the
  upstream's authorization server (`adapters.mcp_auth`);
* ``token_exchange`` -- a token the gateway mints per call for the user
  (sub = user, `act` chain, aud = the server's resource, the scopes the
  policy granted): the same token `Delegations.admit_target()` minted. For
  the gateway's own requests (discovery, probes) it mints one for itself
  (sub = ``switchboard``, no scopes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from adapters.mcp_auth import ClientCredentialsToken
from adapters.mcp_http import Credential
from gateway.delegation.pipeline import Permit
from policies.delegation import DelegatedTokenMinter, MintRequest
from policies.keys import open_secret, seal_secret
from registry.mcp_models import (
    CredentialSpec,
    OAuthClientCredentials,
    StaticHeader,
)
from registry.mcp_store import McpServerConfig

SEAL_PURPOSE = "mcp-credential"
GATEWAY_SUBJECT = "switchboard"


def stored_form(spec: CredentialSpec, secret: str | None) -> tuple[dict[str, Any], str | None]:
    """(what the API may show, the sealed secret) for a registration's credential."""
    if isinstance(spec, StaticHeader):
        return {"type": spec.type, "header": spec.header}, seal_secret(
            spec.value.get_secret_value(), secret, SEAL_PURPOSE
        )
    if isinstance(spec, OAuthClientCredentials):
        shown = spec.model_dump(exclude={"client_secret"}, exclude_none=True)
        return shown, seal_secret(spec.client_secret.get_secret_value(), secret, SEAL_PURPOSE)
    return {"type": spec.type}, None


@dataclass
class UpstreamCredentials:
    """The credential source for one server, built from its stored config."""

    kind: str
    static: Credential | None = None
    oauth: ClientCredentialsToken | None = None
    mint: Callable[[MintRequest], Any] | None = None
    resource: str = ""

    async def default(self) -> Credential | None:
        """For the gateway's own requests to the server."""
        if self.oauth is not None:
            return await self.oauth.credential()
        if self.mint is not None:
            minted = await self.mint(
                MintRequest(
                    subject=GATEWAY_SUBJECT,
                    subject_issuer=GATEWAY_SUBJECT,
                    actors=(GATEWAY_SUBJECT,),
                    audience=self.resource,
                    scopes=frozenset(),
                    client_id=GATEWAY_SUBJECT,
                )
            )
            return Credential("Authorization", f"Bearer {minted.token}")
        return self.static

    async def for_call(self, permit: Permit) -> Credential | None:
        """For one call on a user's behalf."""
        if self.kind == "token_exchange":
            return Credential("Authorization", f"Bearer {permit.token.token}")
        return await self.default()


def build_credentials(
    config: McpServerConfig,
    *,
    secret: str | None,
    minter: DelegatedTokenMinter,
    token_http: httpx2.AsyncClient,
) -> UpstreamCredentials:
    """Opens the sealed secret (`KeySealError` if the gateway's secret cannot)."""
    stored: Mapping[str, Any] = config.credential
    kind = str(stored.get("type", "none"))
    opened = (
        open_secret(config.credential_secret, secret, SEAL_PURPOSE)
        if config.credential_secret is not None
        else None
    )
    if kind == "static_header" and opened is not None:
        return UpstreamCredentials(kind, static=Credential(str(stored["header"]), opened))
    if kind == "oauth_client_credentials" and opened is not None:
        return UpstreamCredentials(
            kind,
            oauth=ClientCredentialsToken(
                token_http,
                token_url=str(stored["token_url"]),
                client_id=str(stored["client_id"]),
                client_secret=opened,
                scope=stored.get("scope"),
                resource=stored.get("resource"),
            ),
        )
    if kind == "token_exchange":
        return UpstreamCredentials(kind, mint=minter.mint, resource=config.resource)
    return UpstreamCredentials("none")
