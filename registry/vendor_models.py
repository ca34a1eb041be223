"""Registrations of agents the gateway runs itself: OpenAI-compatible and REST webhooks.

Such an agent has no A2A card of its own; the gateway writes one from the
registration (`registry.vendor_cards`) and stores it in the agents table, so
the agent is listed, searched and permission-checked like any A2A agent. The
upstream configuration lives next to it (`registry.tables.vendor_agents`);
its API key is never stored in the clear and never shown.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from registry.models import AGENT_ID_PATTERN, AgentRecord, is_absolute_uri
from registry.urls import HttpUrlText

SKILL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SECRET_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # noqa: S105 - a name, not a secret
HEADER_PATTERN = r"^[A-Za-z0-9-]{1,64}$"


class VendorSkill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=SKILL_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    tags: list[str] = Field(default_factory=list, max_length=32)
    examples: list[str] = Field(default_factory=list, max_length=32)
    idempotent: bool = Field(
        default=False,
        description="Safe to run twice: a call interrupted by a gateway restart is retried.",
    )
    instructions: str | None = Field(
        default=None,
        max_length=16_000,
        description="OpenAI-compatible agents: added to the system prompt for this skill.",
    )


class OpenAIUpstream(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["openai"]
    base_url: HttpUrlText = Field(description="e.g. https://api.openai.com/v1")
    model: str = Field(min_length=1, max_length=256)
    system_prompt: str = Field(default="", max_length=64_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    stream_usage: bool = Field(
        default=True,
        description="Ask for token usage on streamed answers (stream_options.include_usage, "
        "as OpenAI's API has it); off for a server that refuses the option.",
    )


class WebhookUpstream(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["rest"]
    url: HttpUrlText
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    mapping: dict[str, Any] = Field(
        default_factory=dict, description="Request templates and response selectors."
    )


Upstream = Annotated[OpenAIUpstream | WebhookUpstream, Field(discriminator="type")]


class VendorUserOAuth(BaseModel):
    """Each user's own token from the vendor's authorization server (connected
    accounts, `gateway.connections`): sent as ``Authorization: Bearer`` on
    every call the user makes, never another user's, never the gateway's.

    The authorization server is the one named here (its RFC 8414 metadata
    read at its issuer URL), else the one the upstream names in its
    protected resource metadata (RFC 9728: its 401's ``WWW-Authenticate``,
    then the well-known URLs). The client is the one given here, else the
    gateway's Client ID Metadata Document, else Dynamic Client Registration
    (RFC 7591), as for MCP servers."""

    model_config = ConfigDict(extra="forbid")

    authorization_server: HttpUrlText | None = Field(
        default=None,
        description="the authorization server's issuer URL; default: discovered from the "
        "upstream (RFC 9728)",
    )
    client_id: str | None = Field(
        default=None, min_length=1, max_length=512, description="a client registered out of band"
    )
    client_secret: SecretStr | None = Field(
        default=None, description="the pre-registered client's secret; stored sealed, never shown"
    )
    scope: str | None = Field(
        default=None,
        max_length=2048,
        description="scopes to ask each user for; default: what the upstream's metadata says",
    )

    @model_validator(mode="after")
    def _check(self) -> VendorUserOAuth:
        if self.client_secret is not None:
            if self.client_id is None:
                raise ValueError("client_secret goes with client_id")
            if not 0 < len(self.client_secret.get_secret_value()) <= 4096:
                raise ValueError("client_secret must be 1-4096 characters")
        if self.scope is not None and not _SCOPE.fullmatch(self.scope):
            raise ValueError("scope is space-separated tokens (RFC 6749 §3.3)")
        if self.client_id is not None and not _CLIENT_ID.fullmatch(self.client_id):
            raise ValueError("client_id is printable ASCII (RFC 6749 Appendix A.1)")
        return self


# RFC 6749 Appendix A: scope-token = 1*NQCHAR; client_id = *VSCHAR.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")
_CLIENT_ID = re.compile(r"[\x20-\x7e]+")


class UserOAuthInfo(BaseModel):
    """`VendorUserOAuth` as stored and shown: never the client's secret."""

    authorization_server: str | None = None
    client_id: str | None = None
    client_secret: bool = False  # whether one is kept (sealed)
    scope: str | None = None


class VendorRegistration(BaseModel):
    """`POST /vendor-agents`."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=AGENT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    version: str = Field(default="1.0.0", max_length=64)
    upstream: Upstream
    skills: list[VendorSkill] = Field(min_length=1, max_length=64)
    api_key: SecretStr | None = Field(
        default=None, description="Stored sealed with SWITCHBOARD_SECRET_KEY; never shown."
    )
    api_key_secret: str | None = Field(
        default=None,
        pattern=SECRET_NAME_PATTERN,
        description="The name of a secret in the gateway's settings "
        "(SWITCHBOARD_SECRETS__<NAME>) holding the API key.",
    )
    api_key_header: str = Field(
        default="Authorization",
        pattern=HEADER_PATTERN,
        description="Where the key goes; in Authorization it is sent as a Bearer token.",
    )
    token_header: str | None = Field(
        default=None,
        pattern=HEADER_PATTERN,
        description="Also send the token the gateway mints per call (sub = the user) here.",
    )
    user_oauth: VendorUserOAuth | None = Field(
        default=None,
        description="Call the upstream with each user's own token from the vendor's "
        "authorization server (the user connects their account once).",
    )
    resource: str | None = Field(default=None, max_length=2048)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)

    @model_validator(mode="after")
    def _check(self) -> VendorRegistration:
        if self.api_key is not None and self.api_key_secret is not None:
            raise ValueError("give at most one of api_key and api_key_secret")
        has_key = self.api_key is not None or self.api_key_secret is not None
        if self.user_oauth is not None:
            # The user's token is the Authorization header (RFC 6750 §2.1).
            if has_key and self.api_key_header.lower() == "authorization":
                raise ValueError(
                    "with user_oauth the user's token goes in Authorization: send the "
                    "API key in another header (api_key_header)"
                )
            if self.token_header is not None and self.token_header.lower() == "authorization":
                raise ValueError("with user_oauth, token_header cannot be Authorization")
        if self.resource is not None and not is_absolute_uri(self.resource):
            raise ValueError("resource must be an absolute URI without a fragment (RFC 8707)")
        if self.token_header is not None and self.token_header.lower() in (
            self.api_key_header.lower(),
            "host",
            "content-type",
        ):
            raise ValueError("token_header must differ from api_key_header")
        ids = [s.id for s in self.skills]
        if len(set(ids)) != len(ids):
            raise ValueError("skill ids must be unique")
        return self


class CredentialInfo(BaseModel):
    """How the gateway authenticates upstream, without the secret."""

    type: Literal["none", "sealed", "settings_secret"]
    name: str | None = None
    header: str = "Authorization"


class VendorConfig(BaseModel):
    """What is stored next to the agent (and shown): never the key itself."""

    upstream: Upstream
    skills: list[VendorSkill]
    credential: CredentialInfo
    token_header: str | None = None
    user_oauth: UserOAuthInfo | None = None


class VendorAgentRecord(BaseModel):
    """`GET /vendor-agents/{id}`: the agent's registry record and its configuration."""

    agent: AgentRecord
    config: VendorConfig

    @property
    def id(self) -> str:
        return self.agent.id
