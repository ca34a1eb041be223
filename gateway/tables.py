"""SQL tables the gateway itself owns (registry tables live in `registry.tables`)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    # PEM, sealed with SWITCHBOARD_SECRET_KEY unless running --dev without one.
    Column("private_key", Text, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Set when the key is rotated out: past this instant it is no longer
    # published, so it is "now + the longest lifetime of a token it signed".
    Column("retires_at", DateTime(timezone=True), nullable=True),
)

# One row per decision (allow or deny), never a token value: `token_id` is the
# minted token's `jti`, which identifies it without being usable.
audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("event", String(32), nullable=False),
    Column("subject", Text, nullable=False),
    Column("subject_issuer", Text, nullable=False),
    Column("client_id", Text, nullable=True),
    Column("actors", JSON, nullable=False),
    Column("target", String(64), nullable=True),
    Column("action", Text, nullable=True),
    Column("scopes_requested", Text, nullable=True),
    Column("scopes_granted", Text, nullable=False),
    Column("decision", String(8), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detail", Text, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("token_id", String(64), nullable=True),
    Index("ix_audit_subject", "subject", "id"),
    Index("ix_audit_target", "target", "id"),
    Index("ix_audit_at", "at"),
)
