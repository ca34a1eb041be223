"""`coordination_state`: holds, cooldowns, leases and budget counts per
business entity, shared by every replica (`gateway.delegation.coordination`).

Revision ID: 0017_coordination
Revises: 0016_task_owner_caller
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_coordination"
down_revision = "0016_task_owner_caller"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coordination_state",
        sa.Column("rule", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("slot", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("until", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("agent", sa.String(64), nullable=True),
        sa.Column("action", sa.Text, nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("opened_at", sa.Float, nullable=False),
    )
    op.create_index("coordination_state_entity", "coordination_state", ["entity", "key"])


def downgrade() -> None:
    op.drop_index("coordination_state_entity", "coordination_state")
    op.drop_table("coordination_state")
