"""SQL tables the gateway itself owns (registry tables live in `registry.tables`)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, Text

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
    # Past this instant the key neither signs nor verifies; rotation (a later
    # issue) sets it to "last token signed + max lifetime".
    Column("retires_at", DateTime(timezone=True), nullable=True),
)
