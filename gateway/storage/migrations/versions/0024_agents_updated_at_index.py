"""An index on `agents (updated_at, revision)`: the registry's fingerprint
(count, latest change, sum of revisions) that `/mcp`'s cached agent-skill
catalog checks on every listing reads it instead of the table's cards.

Revision ID: 0024_agents_updated_at_index
Revises: 0023_console_logins_dropped
Create Date: 2026-11-23
"""

from alembic import op

revision = "0024_agents_updated_at_index"
down_revision = "0023_console_logins_dropped"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agents_updated_at", "agents", ["updated_at", "revision"])


def downgrade() -> None:
    op.drop_index("ix_agents_updated_at", table_name="agents")
