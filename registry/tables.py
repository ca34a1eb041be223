"""SQL tables of the registry (SQLite and PostgreSQL through the same definitions).

Schema changes go through the Alembic migrations in `gateway/storage/migrations`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    true,
)

metadata = MetaData()


def as_utc(value: datetime) -> datetime:
    """Every time stored is UTC. SQLite hands datetimes back naive (and keeps
    only the wall-clock text of an aware one), so normalise both ways."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


FACET_VALUE = String(255).with_variant(String(255, collation="C"), "postgresql")

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("card_url", Text, nullable=True, unique=True),
    # The audience of tokens minted for this agent (RFC 8707 resource indicator).
    Column("resource", Text, nullable=True),
    # How long to wait for this agent; NULL means the gateway's default.
    Column("timeout_seconds", Float, nullable=True),
    # Handoff contracts: {skill id: JSON Schema of its data input} (registry.contracts).
    Column("skill_contracts", JSON, nullable=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("card_version", Text, nullable=False),
    Column("protocol_version", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("card", JSON, nullable=False),
    Column("original_card", JSON, nullable=False),
    Column("card_digest", String(80), nullable=False),
    Column("signature_status", String(16), nullable=False),
    Column("signature_detail", Text, nullable=False),
    Column("pinned_keys", JSON, nullable=True),
    Column("health_status", String(16), nullable=False),
    Column("health_failures", Integer, nullable=False, default=0),
    Column("health_successes", Integer, nullable=False, default=0),
    Column("health_detail", Text, nullable=True),
    Column("health_checked_at", DateTime(timezone=True), nullable=True),
    Column("health_lease_until", DateTime(timezone=True), nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ux_agents_resource", "resource", unique=True),
    # The registry's fingerprint (`SqlAgentStore.fingerprint`) reads only this.
    Index("ix_agents_updated_at", "updated_at", "revision"),
)

agent_card_versions = Table(
    "agent_card_versions",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("card", JSON, nullable=False),
    Column("original_card", JSON, nullable=False),
    Column("card_digest", String(80), nullable=False),
    Column("card_version", Text, nullable=False),
    Column("signature_status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# An agent's health as it changed: one row per change of status the health
# checks decided (not one per check), the newest MAX_HEALTH_EVENTS kept.
agent_health_events = Table(
    "agent_health_events",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("previous", String(16), nullable=True),
    Column("detail", Text, nullable=True),
)

# Exact-match facets (skill ids, tags, media types) for filtering without JSON
# functions, which SQLite and PostgreSQL spell differently.
agent_facets = Table(
    "agent_facets",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    # Byte-order collation on PostgreSQL so prefix ranges (free-text search) are
    # exact; SQLite's default BINARY collation already is.
    Column("value", FACET_VALUE, primary_key=True),
    # Covering: a filter is answered from the index alone, already in agent_id order.
    Index("ix_agent_facets_lookup", "kind", "value", "agent_id"),
)

# How a registered agent proves who it is at the token endpoint: a client
# secret (only its SHA-256 is kept) or its own JWKS (private_key_jwt, RFC 7523).
agent_credentials = Table(
    "agent_credentials",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("method", String(32), nullable=False),
    Column("secret_hash", String(128), nullable=True),
    Column("jwks", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# MCP servers the gateway federates: reached over Streamable HTTP (`url`) or
# launched as a local process (`command`). The credential the gateway uses
# upstream is described in `credential` (never a secret) and, when it has
# one, `credential_secret` holds it sealed with SWITCHBOARD_SECRET_KEY.
mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("transport", String(16), nullable=False),
    Column("url", Text, nullable=True),
    Column("command", JSON, nullable=True),
    # The audience of tokens minted for this server (RFC 8707 resource indicator).
    Column("resource", Text, nullable=False),
    Column("timeout_seconds", Float, nullable=True),
    Column("credential", JSON, nullable=False),
    Column("credential_secret", Text, nullable=True),
    Column("registered_by", Text, nullable=False),
    Column("trusted_registrant", Boolean, nullable=False),
    # False: the server's tools are offered under their own names where free.
    Column("prefix_tools", Boolean, nullable=False, server_default=true()),
    Column("server_info", JSON, nullable=True),
    Column("protocol_version", String(32), nullable=True),
    Column("health_status", String(16), nullable=False),
    Column("health_detail", Text, nullable=True),
    Column("health_checked_at", DateTime(timezone=True), nullable=True),
    Column("tools_refreshed_at", DateTime(timezone=True), nullable=True),
    # The digest of the listing last applied to the tools' rows (`mcp_sync`).
    Column("tools_listing", String(64), nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per tool ever seen on a server (kept when it disappears upstream,
# so its approval history survives and a comeback is checked like a change).
# `digest` pins the definition as last listed, `approved_digest` the one an
# admin (or trust-on-first-use) approved; they differ -> quarantined.
mcp_tools = Table(
    "mcp_tools",
    metadata,
    Column(
        "server_id", String(64), ForeignKey("mcp_servers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("name", String(512), primary_key=True),
    Column("namespaced", String(64), nullable=False, unique=True),
    Column("definition", JSON, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("flags", JSON, nullable=False),
    Column("available", Boolean, nullable=False),
    Column("approved_digest", String(80), nullable=True),
    Column("approved_definition", JSON, nullable=True),
    Column("approved_by", Text, nullable=True),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

# Agents the gateway runs itself (OpenAI-compatible endpoints, REST webhooks):
# the row in `agents` holds the card the gateway wrote; this one the upstream's
# configuration (`registry.vendor_models.VendorConfig`, never a secret) and,
# when the registration gave one, the API key sealed with SWITCHBOARD_SECRET_KEY.
vendor_agents = Table(
    "vendor_agents",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("config", JSON, nullable=False),
    Column("api_key_sealed", Text, nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    # `user_oauth`'s pre-registered client secret, sealed (never in `config`).
    Column("client_secret_sealed", Text, nullable=True),
)

# A client registered out of band at the authorization server of an A2A agent
# whose users connect their own accounts (its card cannot name one): set by
# an admin (`PUT /agents/{id}/oauth-client`), its secret sealed.
agent_oauth_clients = Table(
    "agent_oauth_clients",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("client_id", String(512), nullable=False),
    Column("client_secret_sealed", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Virtual MCP servers: named tool sets served at /mcp/{name} (`registry.mcp_sets`).
mcp_sets = Table(
    "mcp_sets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("instructions", Text, nullable=False),
    Column("icon", Text, nullable=True),
    Column("selection", JSON, nullable=False),
    Column("tool_search", String(16), nullable=False, server_default="off"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)

# Tool search: one document per tool `/mcp` can offer (`registry.tool_index`);
# the full-text index over it is the dialect's own (migration 0029).
tool_docs = Table(
    "tool_docs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("digest", String(64), nullable=False),
    Column("name_words", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("params", Text, nullable=False),
)
