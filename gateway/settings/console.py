"""The web console's settings (`console:`): how long a session lasts, and the
OpenID Connect client it logs people in with (`gateway.console`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ConsoleOidc(BaseModel):
    """The console as an OIDC client (authorization code with PKCE, RFC 7636)
    of one of the gateway's trusted issuers. The access token it gets is
    verified like any bearer token, then dropped: a session keeps only the
    subject, issuer, scopes and expiry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(description="One of `trusted_issuers` (exact `iss`).")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = Field(
        default=None, description="For a confidential client; a public client uses PKCE alone."
    )
    scope: str = Field(
        default="openid", description="What to ask the issuer for (space-separated)."
    )
    authorization_endpoint: str | None = Field(
        default=None, description="Default: from the issuer's OpenID Connect discovery document."
    )
    token_endpoint: str | None = Field(
        default=None, description="Default: from the issuer's OpenID Connect discovery document."
    )


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Serve the console at /ui.")
    session_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="The longest a console session lasts (one from OIDC also ends with "
        "the access token it was made from).",
    )
    oidc: ConsoleOidc | None = Field(
        default=None, description="Log in with this issuer (else only the --dev login)."
    )

    def insecurities(self) -> list[str]:
        """Why these settings are unfit outside --dev (`Settings.insecurities`)."""
        oidc = self.oidc
        if oidc is None:
            return []
        urls = {
            "issuer": oidc.issuer,
            "authorization_endpoint": oidc.authorization_endpoint,
            "token_endpoint": oidc.token_endpoint,
        }
        # The code, the PKCE verifier and the access token cross these.
        return [
            f"console.oidc.{name} must be https:// outside --dev"
            for name, url in urls.items()
            if url is not None and not url.startswith("https://")
        ]
