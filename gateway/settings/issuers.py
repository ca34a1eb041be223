"""The external issuers whose access tokens the gateway accepts (`issuers:`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IssuerSettings(BaseModel):
    """An external OIDC/OAuth issuer whose access tokens the gateway accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(description="Exact `iss` value; compared byte for byte.")
    jwks_url: str = Field(description="Where the issuer publishes its signing keys.")
    # RFC 9068 §4: resource servers MUST check `typ` is `at+jwt`. Some IdPs still
    # stamp plain `JWT` on access tokens; an operator can opt in per issuer.
    accepted_types: list[str] = Field(default_factory=lambda: ["at+jwt"])
    audience: str | None = Field(
        default=None, description="Expected `aud`; defaults to the gateway's resource id."
    )
