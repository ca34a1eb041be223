"""The registry's records as the API shows them (pydantic, JSON in camelCase-free snake_case)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.signatures import SignatureStatus
from registry.urls import HttpUrlText

AGENT_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
# RFC 9110 §5.6.2 tchar: a header field name, an auth-scheme, any token.
HTTP_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"


class HealthStatus(enum.StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class AgentRegistration(BaseModel):
    """`POST /agents`: a card URL to fetch, or the card itself."""

    model_config = ConfigDict(extra="forbid")

    card_url: HttpUrlText | None = None
    card: dict[str, Any] | None = None
    id: str | None = Field(default=None, pattern=AGENT_ID_PATTERN)
    signing_keys: dict[str, Any] | None = Field(
        default=None,
        description="A JWKS the operator pins; card signatures must verify against it.",
    )
    resource: str | None = Field(
        default=None,
        max_length=2048,
        description="The audience of tokens minted for this agent (RFC 8707); "
        "defaults to the card's first interface URL.",
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="How long the gateway waits for this agent's answer; "
        "defaults to the gateway's upstream_timeout_seconds.",
    )

    skill_contracts: dict[str, Any] | None = Field(
        default=None,
        description="Handoff contracts: {skill id: JSON Schema} that a delegation's data "
        "part must match (docs/resilience.md); checked here, applied before the agent is called.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> AgentRegistration:
        if (self.card_url is None) == (self.card is None):
            raise ValueError("give exactly one of card_url or card")
        if self.signing_keys is not None and not isinstance(self.signing_keys.get("keys"), list):
            raise ValueError("signing_keys must be a JWKS: {'keys': [...]}")
        if self.resource is not None and not is_absolute_uri(self.resource):
            raise ValueError("resource must be an absolute URI without a fragment (RFC 8707)")
        return self


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    card: dict[str, Any] | None = None


class SkillSummary(BaseModel):
    id: str
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    input_modes: list[str] = Field(default_factory=list)
    output_modes: list[str] = Field(default_factory=list)


class InterfaceSummary(BaseModel):
    url: str
    protocol_binding: str
    protocol_version: str = ""


class HealthInfo(BaseModel):
    status: HealthStatus
    consecutive_failures: int = 0
    checked_at: datetime | None = None
    detail: str | None = None


class HealthEvent(BaseModel):
    """A change of an agent's health status, as its checks decided it."""

    at: datetime
    status: HealthStatus
    previous: HealthStatus | None = None
    detail: str | None = None


class BreakerInfo(BaseModel):
    """The agent's circuit breaker, as this gateway process sees it."""

    state: str
    failures: int = 0
    opened_at: datetime | None = None


class SignatureInfo(BaseModel):
    status: SignatureStatus
    detail: str


class AgentRecord(BaseModel):
    id: str
    resource: str
    timeout_seconds: float | None = None
    skill_contracts: dict[str, Any] = Field(default_factory=dict)
    name: str
    description: str
    version: str
    protocol_version: str
    revision: int
    card_url: str | None
    card_digest: str
    skills: list[SkillSummary]
    interfaces: list[InterfaceSummary]
    health: HealthInfo
    signature: SignatureInfo
    breaker: BreakerInfo | None = None
    registered_at: datetime
    updated_at: datetime


class AgentPage(BaseModel):
    items: list[AgentRecord]
    next_cursor: str | None = None


class CardVersion(BaseModel):
    revision: int
    version: str
    card_digest: str
    signature_status: SignatureStatus
    created_at: datetime


class AgentQuery(BaseModel):
    skill: str | None = None
    tag: str | None = None
    input_mode: str | None = None
    output_mode: str | None = None
    q: str | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = None


def is_absolute_uri(value: str) -> bool:
    """RFC 8707 §2: a resource is an absolute URI and MUST NOT include a fragment."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return (
        bool(parts.scheme)
        and bool(parts.netloc or parts.path)
        and "#" not in value
        and value.isprintable()
        and " " not in value
    )
