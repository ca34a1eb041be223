"""A user's connected account at an upstream (`gateway.connections.vault` keeps
them sealed): what listings show of it, what a call uses of it (its tokens,
never printed), and what connecting or refreshing brought."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConnectionInfo:
    """A connection as listings show it: who, where, which scopes, when --
    read without opening anything sealed."""

    id: str
    subject: str
    issuer: str
    upstream: str
    scope: str | None
    expires_at: datetime | None
    authorization_server: str
    created_at: datetime
    refreshed_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class Connection(ConnectionInfo):
    """A connection as a call uses it: the listing's fields, where its tokens
    come from, and the tokens themselves (never printed)."""

    token_endpoint: str
    revocation_endpoint: str | None
    resource: str | None
    version: int
    refreshing_until: datetime | None
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    client: OAuthClientInformationFull = field(repr=False)

    @property
    def token_id(self) -> str:
        """The access token's fingerprint, for the audit: names it, cannot be used."""
        return fingerprint(self.access_token)

    def fresh(self, now: datetime, margin_seconds: float) -> bool:
        """Usable for at least ``margin_seconds`` more (no expiry: until refused)."""
        return self.expires_at is None or self.expires_at - now > timedelta(seconds=margin_seconds)


@dataclass(frozen=True)
class TokenGrant:
    """What connecting (or refreshing) brought: the tokens and where they came from."""

    token: OAuthToken = field(repr=False)
    authorization_server: str
    token_endpoint: str
    revocation_endpoint: str | None
    resource: str | None
    client: OAuthClientInformationFull = field(repr=False)
