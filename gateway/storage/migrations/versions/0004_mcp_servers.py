"""MCP federation: upstream MCP servers and their pinned tools.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("command", sa.JSON, nullable=True),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("timeout_seconds", sa.Float, nullable=True),
        sa.Column("credential", sa.JSON, nullable=False),
        sa.Column("credential_secret", sa.Text, nullable=True),
        sa.Column("registered_by", sa.Text, nullable=False),
        sa.Column("trusted_registrant", sa.Boolean, nullable=False),
        sa.Column("server_info", sa.JSON, nullable=True),
        sa.Column("protocol_version", sa.String(32), nullable=True),
        sa.Column("health_status", sa.String(16), nullable=False),
        sa.Column("health_detail", sa.Text, nullable=True),
        sa.Column("health_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tools_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "mcp_tools",
        sa.Column(
            "server_id",
            sa.String(64),
            sa.ForeignKey("mcp_servers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(512), primary_key=True),
        sa.Column("namespaced", sa.String(64), nullable=False, unique=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("approved_digest", sa.String(80), nullable=True),
        sa.Column("approved_definition", sa.JSON, nullable=True),
        sa.Column("approved_by", sa.Text, nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mcp_tools")
    op.drop_table("mcp_servers")
