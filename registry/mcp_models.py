"""The MCP federation's records as the API shows them, and the credentials of
its registration requests (`registry.mcp_registration`).

Credentials come in through `McpServerRegistration.credential`; what comes
back (`CredentialInfo`) says how the gateway authenticates upstream and never
carries the secret itself.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from registry.models import HTTP_TCHAR, HealthStatus
from registry.urls import HttpUrlText

# RFC 9110 §5.1 field-name = token.
_HEADER_NAME = re.compile(rf"^{HTTP_TCHAR}{{1,128}}$")
# Headers the transport owns: a credential must not be able to replace them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "accept",
        "accept-encoding",
        "cookie",
        "te",
        "upgrade",
        "last-event-id",
    }
)


class NoCredential(BaseModel):
    """The upstream needs no credential."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["none"] = "none"


class StaticHeader(BaseModel):
    """One header the gateway sends on every request (an API key, a static bearer)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["static_header"]
    header: str = Field(default="Authorization", description="the header's name")
    value: SecretStr = Field(description="the header's value; stored sealed, never shown")

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        lowered = value.lower()
        if (
            not _HEADER_NAME.match(value)
            or lowered in _RESERVED_HEADERS
            or lowered.startswith("mcp-")
        ):
            raise ValueError(f"{value!r} cannot carry a credential")
        return value

    @field_validator("value")
    @classmethod
    def _header_value(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw or len(raw) > 8192 or any(ord(c) < 0x20 or ord(c) > 0x7E for c in raw):
            raise ValueError("the value must be 1-8192 printable ASCII characters")
        return value


class OAuthClientCredentials(BaseModel):
    """The gateway gets its own token from the upstream's authorization server
    (RFC 6749 §4.4), cached until shortly before it expires."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["oauth_client_credentials"]
    token_url: HttpUrlText
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr = Field(description="stored sealed, never shown")
    scope: str | None = Field(default=None, max_length=2048)
    resource: str | None = Field(
        default=None, max_length=2048, description="RFC 8707 resource to ask the token for"
    )

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not 0 < len(value.get_secret_value()) <= 4096:
            raise ValueError("client_secret must be 1-4096 characters")
        return value


class GatewayToken(BaseModel):
    """A token the gateway mints per call (RFC 8693 style): sub = the user,
    aud = this server's resource, the scopes the policy grants. For upstreams
    that trust the gateway's issuer; the caller's own token is never sent."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["token_exchange"]


class UserOAuth(BaseModel):
    """Each user's own token from the upstream's authorization server: the user
    connects their account once (OAuth 2.1 authorization code with PKCE, as
    MCP authorization specifies), the gateway keeps the tokens sealed per user
    and server and sends each call with its user's own, never another's.

    The authorization server is discovered from the server (RFC 9728, then
    RFC 8414); the client is the one given here (pre-registered), else the
    gateway's Client ID Metadata Document, else Dynamic Client Registration
    (RFC 7591), in the MCP specification's order."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["user_oauth"]
    client_id: str | None = Field(
        default=None, min_length=1, max_length=512, description="a client registered out of band"
    )
    client_secret: SecretStr | None = Field(
        default=None, description="the pre-registered client's secret; stored sealed, never shown"
    )
    scope: str | None = Field(
        default=None,
        max_length=2048,
        description="scopes to ask for; default: what the server's metadata says it needs",
    )

    @model_validator(mode="after")
    def _secret_needs_client(self) -> UserOAuth:
        if self.client_secret is not None:
            if self.client_id is None:
                raise ValueError("client_secret goes with client_id")
            if not 0 < len(self.client_secret.get_secret_value()) <= 4096:
                raise ValueError("client_secret must be 1-4096 characters")
        if self.scope is not None and any(ord(c) < 0x21 and c != " " for c in self.scope):
            raise ValueError("scope is space-separated printable tokens (RFC 6749 §3.3)")
        return self


class IdpTokenExchange(BaseModel):
    """On behalf of the user at the company's identity provider: the user's own
    token from that provider (the one the call came in with) is exchanged
    there for a token for this server -- RFC 8693 token exchange, or the
    ``jwt-bearer`` on-behalf-of grant some providers use instead (Microsoft
    Entra ID). The user's token goes only to their provider, never upstream;
    only tokens that provider issued are exchanged."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["idp_token_exchange"]
    issuer: str = Field(
        min_length=1,
        max_length=2048,
        description="the identity provider's issuer: only its users' tokens are exchanged",
    )
    token_url: HttpUrlText
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr = Field(description="stored sealed, never shown")
    grant: Literal["token_exchange", "jwt_bearer", "identity_assertion"] = Field(
        default="token_exchange",
        description="token_exchange: RFC 8693; jwt_bearer: the on-behalf-of flow "
        "(RFC 7523 assertion, requested_token_use=on_behalf_of); identity_assertion: MCP's "
        "enterprise-managed authorization (an ID-JAG from the provider, presented at the "
        "server's own authorization server)",
    )
    audience: str | None = Field(default=None, max_length=2048, description="RFC 8693 audience")
    resource: str | None = Field(default=None, max_length=2048, description="RFC 8707 resource")
    scope: str | None = Field(default=None, max_length=2048)
    # identity_assertion only: the server's own authorization server, which
    # trusts the provider's ID-JAGs, and the gateway's confidential client there.
    authorization_server: str | None = Field(
        default=None, max_length=2048, description="its issuer: the ID-JAG's audience"
    )
    authorization_server_token_url: HttpUrlText | None = None
    authorization_server_client_id: str | None = Field(default=None, min_length=1, max_length=512)
    authorization_server_client_secret: SecretStr | None = Field(
        default=None, description="stored sealed, never shown"
    )

    @field_validator("client_secret", "authorization_server_client_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not 0 < len(value.get_secret_value()) <= 4096:
            raise ValueError("a client secret must be 1-4096 characters")
        return value

    @model_validator(mode="after")
    def _authorization_server(self) -> IdpTokenExchange:
        named = (
            self.authorization_server,
            self.authorization_server_token_url,
            self.authorization_server_client_id,
            self.authorization_server_client_secret,
        )
        if self.grant == "identity_assertion" and None in named:
            raise ValueError(
                "grant identity_assertion needs authorization_server, "
                "authorization_server_token_url, authorization_server_client_id and "
                "authorization_server_client_secret"
            )
        if self.grant != "identity_assertion" and any(v is not None for v in named):
            raise ValueError("authorization_server_* are for grant identity_assertion only")
        return self


CredentialSpec = Annotated[
    NoCredential
    | StaticHeader
    | OAuthClientCredentials
    | GatewayToken
    | UserOAuth
    | IdpTokenExchange,
    Field(discriminator="type"),
]
CredentialType = Literal[
    "none",
    "static_header",
    "oauth_client_credentials",
    "token_exchange",
    "user_oauth",
    "idp_token_exchange",
]


# How the gateway reaches a server: Streamable HTTP, the legacy HTTP+SSE
# transport of MCP 2024-11-05 (its URL is the SSE endpoint), or a process.
McpTransport = Literal["http", "sse", "stdio"]


class CredentialInfo(BaseModel):
    """How the gateway authenticates upstream; never the secret."""

    type: CredentialType
    header: str | None = None
    issuer: str | None = None
    grant: str | None = None
    audience: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    scope: str | None = None
    resource: str | None = None
    secret_set: bool = False


class CommandInfo(BaseModel):
    command: str
    args: list[str]


class ToolState(enum.StrEnum):
    APPROVED = "approved"  # the definition hashes to the approved digest
    PENDING = "pending"  # never approved (new and flagged, or from an untrusted registrant)
    QUARANTINED = "quarantined"  # approved once, changed since


class ToolFlagInfo(BaseModel):
    kind: str
    field: str
    detail: str


class McpToolRecord(BaseModel):
    name: str = Field(description="the tool's name on its server")
    namespaced: str = Field(description="the name the gateway federates it under")
    state: ToolState
    available: bool = Field(description="false once the server stopped listing it")
    digest: str
    approved_digest: str | None
    flags: list[ToolFlagInfo]
    definition: dict[str, Any]
    approved_definition: dict[str, Any] | None = Field(
        default=None, description="what was approved, while it differs from the definition"
    )
    approved_by: str | None
    approved_at: datetime | None
    first_seen_at: datetime
    changed_at: datetime


class McpHealth(BaseModel):
    status: HealthStatus
    detail: str | None = None
    checked_at: datetime | None = None


class McpServerRecord(BaseModel):
    id: str
    name: str
    transport: McpTransport | Literal["openapi"]
    url: str | None
    command: CommandInfo | None
    resource: str
    timeout_seconds: float | None
    credential: CredentialInfo
    prefix_tools: bool = True
    registered_by: str
    health: McpHealth
    server_info: dict[str, Any] | None
    protocol_version: str | None
    tools_refreshed_at: datetime | None
    registered_at: datetime
    updated_at: datetime
    tools: list[McpToolRecord]


class McpToolView(BaseModel):
    """A tool as a user who may call it sees it: what `/mcp` `tools/list` offers them."""

    name: str = Field(description="the tool's name on its server")
    namespaced: str = Field(description="the name the gateway federates it under")
    definition: dict[str, Any] = Field(description="the approved definition (MCP JSON)")


class McpServerView(BaseModel):
    """A server as a user (not an admin) sees it.

    How the gateway reaches and authenticates to the server (URL, command
    line, resource, credential), who registered it and the health detail (an
    upstream error can name the URL) are for admins. The tools are those the
    user's `/mcp` `tools/list` offers: approved, still offered by the server,
    and allowed by the policy for this user.
    """

    id: str
    name: str
    transport: McpTransport | Literal["openapi"]
    health: McpHealth = Field(description="status and time of the last check; detail is null")
    server_info: dict[str, Any] | None
    protocol_version: str | None
    tools_refreshed_at: datetime | None
    tools: list[McpToolView]


class McpServerList(BaseModel):
    items: list[McpServerRecord | McpServerView] = Field(
        description="admins get every server's record; anyone else a view of each they may use"
    )


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digest: str | None = Field(
        default=None,
        max_length=80,
        description="the digest reviewed; refused (409) if the definition changed since",
    )


class RefreshResult(BaseModel):
    added: list[str]
    changed: list[str]
    removed: list[str]
    kept_out: dict[str, str] = Field(
        default_factory=dict,
        description="new tools that could not have the name they would have had (one name on "
        "/mcp means one target), by the name they wait under for an admin's approval: why",
    )
    server: McpServerRecord
