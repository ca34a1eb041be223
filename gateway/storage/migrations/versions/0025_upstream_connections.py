"""Connected accounts: a user's own tokens at an upstream (`upstream_connections`)
and the client the gateway registered there (`upstream_clients`).

Revision ID: 0025_upstream_connections
Revises: 0024_agents_updated_at_index
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0025_upstream_connections"
down_revision = "0024_agents_updated_at_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_connections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column(
            "upstream",
            sa.String(64),
            sa.ForeignKey("mcp_servers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tokens", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("authorization_server", sa.Text, nullable=False),
        sa.Column("token_endpoint", sa.Text, nullable=False),
        sa.Column("revocation_endpoint", sa.Text, nullable=True),
        sa.Column("client", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("refreshing_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ux_upstream_connections_user",
        "upstream_connections",
        ["upstream", "issuer", "subject"],
        unique=True,
    )
    op.create_table(
        "upstream_clients",
        sa.Column(
            "upstream",
            sa.String(64),
            sa.ForeignKey("mcp_servers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("authorization_server", sa.Text, nullable=False),
        sa.Column("client", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upstream_clients")
    op.drop_index("ux_upstream_connections_user", table_name="upstream_connections")
    op.drop_table("upstream_connections")
