"""`mcp_servers.tools_listing`: the digest of the tool listing last applied
to the server's rows (`registry.mcp_sync`), so that a probe that lists the
same tools again -- on any replica -- only writes when it was listed
(`SqlMcpStore.listed_again`). NULL until the next listing is applied.

Revision ID: 0042_mcp_tools_listing
Revises: 0041_audit_export_generation
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0042_mcp_tools_listing"
down_revision = "0041_audit_export_generation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mcp_servers", sa.Column("tools_listing", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mcp_servers") as batch:
        batch.drop_column("tools_listing")
