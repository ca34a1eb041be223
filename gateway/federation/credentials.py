"""What the gateway presents to each MCP server: the credential configured for it.

Never the caller's token. Per server, one of:

* ``none``;
* ``static_header`` -- one header (an API key), opened from its sealed form;
* ``oauth_client_credentials`` -- the gateway's own token from the
  upstream's authorization server (`adapters.mcp_auth`);
* ``token_exchange`` -- a token the gateway mints per call for the user
  (sub = user, `act` chain, aud = the server's resource, the scopes the
  policy granted): the same token `Delegations.admit` minted. For
  the gateway's own requests (discovery, probes) it mints one for itself
  (sub = ``switchboard``, no scopes);
* ``idp_token_exchange`` -- the user's own token from the company's
  identity provider, exchanged there for one for this server
  (`gateway.connections.on_behalf`); the gateway's own requests carry its
  client-credentials token from the same provider, for the same audience;
* ``user_oauth`` -- each user's own token at the server's authorization
  server, from their connected account (`gateway.connections`). A user who
  has not connected gets `ConnectionRequired`, never anyone else's token.
  The gateway's own requests (listing the tools) go with the registrant's
  connection: what the server lists for them is its catalog; what each user
  may call is still the policy's, with their own token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from adapters.mcp_auth import ClientCredentialsToken
from adapters.mcp_http import Credential, Refused
from gateway.connections.connection import Connection, fingerprint
from gateway.connections.errors import OnBehalfUnavailable, UserCredentialUnavailable
from gateway.connections.on_behalf import AuthorizationServerClient, OnBehalf, OnBehalfConfig
from gateway.connections.service import Connections
from gateway.connections.upstream import Upstream
from gateway.delegation.pipeline import Permit
from policies.delegation import DelegatedTokenMinter, MintRequest
from policies.keys import open_secret, seal_secret
from registry.mcp_models import (
    CredentialSpec,
    IdpTokenExchange,
    OAuthClientCredentials,
    StaticHeader,
    UserOAuth,
)
from registry.mcp_rows import McpServerConfig

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
    if isinstance(spec, IdpTokenExchange):
        secrets = {"client_secret", "authorization_server_client_secret"}
        shown = spec.model_dump(exclude=secrets, exclude_none=True)
        sealed = spec.client_secret.get_secret_value()
        if spec.authorization_server_client_secret is not None:
            # Two secrets, one sealed column: both, as one JSON document.
            at_server = spec.authorization_server_client_secret.get_secret_value()
            sealed = json.dumps({"idp": sealed, "authorization_server": at_server})
        return shown, seal_secret(sealed, secret, SEAL_PURPOSE)
    if isinstance(spec, UserOAuth):
        shown = spec.model_dump(exclude={"client_secret"}, exclude_none=True)
        client_secret = spec.client_secret
        return shown, (
            seal_secret(client_secret.get_secret_value(), secret, SEAL_PURPOSE)
            if client_secret is not None
            else None
        )
    return {"type": spec.type}, None


def with_registrant(shown: dict[str, Any], subject: str, issuer: str) -> dict[str, Any]:
    """A `user_oauth` server's tools are listed with its registrant's connection."""
    if shown.get("type") == "user_oauth":
        return {**shown, "registrant": {"subject": subject, "issuer": issuer}}
    return shown


@dataclass
class UpstreamCredentials:
    """The credential source for one server, built from its stored config."""

    kind: str
    static: Credential | None = None
    oauth: ClientCredentialsToken | None = None
    mint: Callable[[MintRequest], Any] | None = None
    resource: str = ""
    connections: Connections | None = None
    on_behalf: OnBehalf | None = None
    upstream: Upstream | None = None
    registrant: tuple[str, str] | None = None  # (subject, issuer)

    @property
    def per_caller(self) -> bool:
        """Each call carries its own user's credential (no shared session)."""
        return self.kind in ("token_exchange", "user_oauth", "idp_token_exchange")

    @property
    def users_own(self) -> bool:
        """The call carries a credential of the user's own from elsewhere,
        which may be missing (`UserCredentialUnavailable`)."""
        return self.kind in ("user_oauth", "idp_token_exchange")

    async def _connection_of(self, subject: str, issuer: str) -> Connection:
        assert self.connections is not None
        assert self.upstream is not None
        return await self.connections.connection_for(self.upstream, subject=subject, issuer=issuer)

    async def _connected(self, subject: str, issuer: str) -> Credential:
        """The gateway's own requests, with the registrant's connection."""
        found = await self._connection_of(subject, issuer)
        return Credential("Authorization", f"Bearer {found.access_token}")

    async def users_credential(
        self, permit: Permit, user_token: str | None
    ) -> tuple[Credential, str, Connection | None]:
        """The user's own credential for one call, what the audit says of it,
        and the connection it came from (a connected account's)."""
        caller = permit.caller
        if self.kind == "idp_token_exchange":
            assert self.on_behalf is not None
            token = await self.on_behalf.token_for(user_token, caller.issuer, caller.not_after)
            went = f"on behalf at {self.on_behalf.config.issuer} (token {fingerprint(token)})"
            return Credential("Authorization", f"Bearer {token}"), went, None
        found = await self._connection_of(caller.subject, caller.issuer)
        assert self.connections is not None
        await self.connections.vault.used(found)
        went = f"connection {found.id} (scopes {found.scope or '-'}, token {found.token_id})"
        return Credential("Authorization", f"Bearer {found.access_token}"), went, found

    async def default(self) -> Credential | None:
        """For the gateway's own requests to the server."""
        if self.kind == "user_oauth":
            if self.registrant is None:
                return None
            return await self._connected(*self.registrant)
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

    async def for_call(self, permit: Permit, user_token: str | None = None) -> Credential | None:
        """For one call on a user's behalf (``user_token``: the bearer token
        their call came in with, for an exchange at their identity provider)."""
        if self.kind == "token_exchange":
            return Credential("Authorization", f"Bearer {permit.token.token}")
        if self.users_own:
            # The user on whose behalf the call is made, as their identity
            # provider named them (`Caller`: subject and issuer).
            return (await self.users_credential(permit, user_token))[0]
        return await self.default()


class CallCredential:
    """One call's credential. A user's connected account is looked up before
    anything is sent (`Sending.before`: no connection is the call's refusal,
    neither retried nor held against the breaker); any other kind is got per
    attempt, as it always was (a token endpoint's failure is the attempt's)."""

    def __init__(
        self, credentials: UpstreamCredentials, permit: Permit, user_token: str | None = None
    ) -> None:
        self._credentials = credentials
        self._permit = permit
        self._user_token = user_token
        self._held: Credential | None = None
        self._went = ""
        self._used: Connection | None = None

    async def check(self) -> None:
        if self._credentials.users_own:
            self._held, self._went, self._used = await self._credentials.users_credential(
                self._permit, self._user_token
            )

    def went_with(self) -> str:
        """For the call's records: which of the user's credentials (never a token)."""
        return self._went

    async def refused(self, refusals: list[Refused]) -> UserCredentialUnavailable | None:
        """The server refused the user's own credential. 401 (RFC 6750 §3.1):
        revoked there, or issued for another audience -- a connection is
        ended (the user connects again), an exchanged token dropped. 403
        ``insufficient_scope`` to a connection: the user is asked for the
        missing scope (a step-up), the connection kept."""
        credentials = self._credentials
        if self._held is None or not credentials.users_own or not refusals:
            return None
        stepping_up = all(r.status == 403 for r in refusals)
        if stepping_up and credentials.kind != "user_oauth":
            return None  # the identity provider decides its token's scopes
        if credentials.kind == "idp_token_exchange":
            assert credentials.on_behalf is not None
            credentials.on_behalf.forget(self._user_token)
            return OnBehalfUnavailable(
                credentials.on_behalf.config.upstream,
                "the server refused the token your identity provider issued for it",
            )
        assert credentials.connections is not None
        assert credentials.upstream is not None
        assert self._used is not None
        # A step-up names the scopes its challenge did, if any did.
        refusal = next((r for r in refusals if r.scope), refusals[0]) if stepping_up else None
        return await credentials.connections.answered(
            credentials.upstream, self._used, refusal or Refused(401)
        )

    async def get(self) -> Credential | None:
        if self._held is not None:
            return self._held
        return await self._credentials.for_call(self._permit, self._user_token)


def build_credentials(
    config: McpServerConfig,
    *,
    secret: str | None,
    minter: DelegatedTokenMinter,
    token_http: httpx2.AsyncClient,
    connections: Connections | None = None,
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
    if kind == "idp_token_exchange" and opened is not None:
        return _on_behalf(config, stored, opened, token_http)
    if kind == "user_oauth" and connections is not None and config.url is not None:
        registrant = stored.get("registrant")
        return UpstreamCredentials(
            kind,
            connections=connections,
            upstream=upstream_of(config, opened),
            registrant=(
                (str(registrant["subject"]), str(registrant["issuer"]))
                if isinstance(registrant, Mapping)
                else None
            ),
        )
    return UpstreamCredentials("none")


def upstream_of(config: McpServerConfig, opened_secret: str | None) -> Upstream:
    stored = config.credential
    assert config.url is not None
    client_id = stored.get("client_id")
    scope = stored.get("scope")
    return Upstream(
        id=config.id,
        url=config.url,
        client_id=str(client_id) if client_id else None,
        client_secret=opened_secret,
        scope=str(scope) if scope else None,
    )


def _on_behalf(
    config: McpServerConfig, stored: Mapping[str, Any], opened: str, token_http: httpx2.AsyncClient
) -> UpstreamCredentials:
    grant = str(stored.get("grant", "token_exchange"))
    at_server: AuthorizationServerClient | None = None
    idp_secret = opened
    if grant == "identity_assertion":
        both = json.loads(opened)
        idp_secret = str(both["idp"])
        at_server = AuthorizationServerClient(
            issuer=str(stored["authorization_server"]),
            token_url=str(stored["authorization_server_token_url"]),
            client_id=str(stored["authorization_server_client_id"]),
            client_secret=str(both["authorization_server"]),
        )
    on_behalf = OnBehalfConfig(
        upstream=config.id,
        issuer=str(stored["issuer"]),
        token_url=str(stored["token_url"]),
        client_id=str(stored["client_id"]),
        client_secret=idp_secret,
        grant=grant,
        audience=stored.get("audience"),
        resource=stored.get("resource"),
        scope=stored.get("scope"),
        authorization_server=at_server,
    )
    # The gateway's own requests (listing the tools): its own token, by client
    # credentials (RFC 6749 §4.4), from whichever server the upstream trusts.
    return UpstreamCredentials(
        "idp_token_exchange",
        on_behalf=OnBehalf(token_http, on_behalf),
        oauth=ClientCredentialsToken(
            token_http,
            token_url=at_server.token_url if at_server else on_behalf.token_url,
            client_id=at_server.client_id if at_server else on_behalf.client_id,
            client_secret=at_server.client_secret if at_server else idp_secret,
            scope=on_behalf.scope,
            resource=on_behalf.resource,
            audience=None if at_server else on_behalf.audience,
        ),
    )


def user_oauth_upstream(config: McpServerConfig, secret: str | None) -> Upstream | None:
    """The server as its users connect to it; None unless it is `user_oauth`
    over HTTP. Raises `KeySealError` if its client secret cannot be opened."""
    if config.credential.get("type") != "user_oauth" or config.url is None:
        return None
    opened = (
        open_secret(config.credential_secret, secret, SEAL_PURPOSE)
        if config.credential_secret is not None
        else None
    )
    return upstream_of(config, opened)
