"""An agent's health history: a row per change of status (`registry.store`).

Revision ID: 0022_agent_health_events
Revises: 0021_console_sessions
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_agent_health_events"
down_revision = "0021_console_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_health_events",
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("agent_health_events")
