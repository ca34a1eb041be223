"""API keys for scripts and services: `api_keys` holds each key's public id,
name, owner, scopes (and what its owner held when it was made), limits,
expiry, revocation and last use -- and only the SHA-256 of its secret
(`gateway.delegation.api_keys`).

Revision ID: 0038_api_keys
Revises: 0037_flow_reservations
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0038_api_keys"
down_revision = "0037_flow_reservations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(80), nullable=False),
        sa.Column("service", sa.Boolean, nullable=False),
        sa.Column("owner_subject", sa.Text, nullable=False),
        sa.Column("owner_issuer", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("owner_scopes", sa.Text, nullable=False),
        sa.Column("rate", sa.String(32), nullable=True),
        sa.Column("budget", sa.String(40), nullable=True),
        sa.Column("spent", sa.String(40), nullable=False),
        sa.Column("created_by_subject", sa.Text, nullable=False),
        sa.Column("created_by_issuer", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_owner", "api_keys", ["owner_issuer", "owner_subject"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_owner", table_name="api_keys")
    op.drop_table("api_keys")
