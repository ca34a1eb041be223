"""Gateway-run agents: OpenAI-compatible and REST webhook upstreams, and their runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vendor_agents",
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("api_key_sealed", sa.Text, nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gateway_runs",
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(256), primary_key=True),
        sa.Column("skill", sa.String(64), nullable=True),
        sa.Column("turn", sa.JSON, nullable=False),
        sa.Column("caller", sa.JSON, nullable=False),
        sa.Column("streaming", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("runner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gateway_runs_lease", "gateway_runs", ["lease_until"])


def downgrade() -> None:
    op.drop_index("ix_gateway_runs_lease", table_name="gateway_runs")
    op.drop_table("gateway_runs")
    op.drop_table("vendor_agents")
