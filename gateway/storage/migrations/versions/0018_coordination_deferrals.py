"""`coordination_deferrals`: calls a coordination rule in `mode: defer` holds
back until what held them ends (`gateway.delegation.deferrals`).

Revision ID: 0018_coordination_deferrals
Revises: 0017_coordination
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_coordination_deferrals"
down_revision = "0017_coordination"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coordination_deferrals",
        sa.Column("approval_id", sa.String(40), primary_key=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index(
        "ix_coordination_deferrals_waiting", "coordination_deferrals", ["state", "rule", "key"]
    )


def downgrade() -> None:
    op.drop_index("ix_coordination_deferrals_waiting", "coordination_deferrals")
    op.drop_table("coordination_deferrals")
