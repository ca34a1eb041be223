"""Virtual MCP servers: named tool sets an admin curates, served at
`/mcp/{name}` (`registry.mcp_sets`).

Revision ID: 0028_mcp_sets
Revises: 0027_configured_oauth_clients
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0028_mcp_sets"
down_revision = "0027_configured_oauth_clients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_sets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("icon", sa.Text, nullable=True),
        sa.Column("selection", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mcp_sets")
