"""Initial schema: agent registry, card history, search facets, signing keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("card_url", sa.Text, nullable=True, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("card_version", sa.Text, nullable=False),
        sa.Column("protocol_version", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("card", sa.JSON, nullable=False),
        sa.Column("original_card", sa.JSON, nullable=False),
        sa.Column("card_digest", sa.String(80), nullable=False),
        sa.Column("signature_status", sa.String(16), nullable=False),
        sa.Column("signature_detail", sa.Text, nullable=False),
        sa.Column("pinned_keys", sa.JSON, nullable=True),
        sa.Column("health_status", sa.String(16), nullable=False),
        sa.Column("health_failures", sa.Integer, nullable=False),
        sa.Column("health_successes", sa.Integer, nullable=False),
        sa.Column("health_detail", sa.Text, nullable=True),
        sa.Column("health_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("health_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_card_versions",
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("card", sa.JSON, nullable=False),
        sa.Column("original_card", sa.JSON, nullable=False),
        sa.Column("card_digest", sa.String(80), nullable=False),
        sa.Column("card_version", sa.Text, nullable=False),
        sa.Column("signature_status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_facets",
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column(
            "value",
            sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql"),
            primary_key=True,
        ),
    )
    op.create_index("ix_agent_facets_lookup", "agent_facets", ["kind", "value", "agent_id"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_index("ix_agent_facets_lookup", table_name="agent_facets")
    op.drop_table("agent_facets")
    op.drop_table("agent_card_versions")
    op.drop_table("agents")
