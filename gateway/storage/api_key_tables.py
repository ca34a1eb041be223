"""API keys (`gateway.delegation.api_keys`, migration 0038): one row per key,
never its secret -- only the secret's SHA-256 (`policies.api_keys`).
Migrated with the rest (`gateway.storage.db.TARGET_METADATA`)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, MetaData, String, Table, Text

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    # The key's public id: `sk-sb-<id>` is what people see of it.
    Column("id", String(16), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", String(80), nullable=False),
    # A user's key acts as its owner (subject at issuer); a service's as the
    # service (its name at `policies.api_keys.SERVICE_ISSUER`).
    Column("service", Boolean, nullable=False),
    Column("owner_subject", Text, nullable=False),
    Column("owner_issuer", Text, nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated (RFC 6749 §3.3)
    # What the owner held when the key was made: the key never holds more.
    Column("owner_scopes", Text, nullable=False),
    Column("rate", String(32), nullable=True),  # the `limits` notation: 10/second
    Column("budget", String(40), nullable=True),  # in the policy's currency
    Column("spent", String(40), nullable=False),
    Column("created_by_subject", Text, nullable=False),
    Column("created_by_issuer", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Index("ix_api_keys_owner", "owner_issuer", "owner_subject"),
)
