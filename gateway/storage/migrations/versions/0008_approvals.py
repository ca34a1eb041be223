"""Human approval: calls the policy holds until an admin decides.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("action_kind", sa.String(8), nullable=False),
        sa.Column("action", sa.Text, nullable=True),
        sa.Column("tool", sa.Text, nullable=True),
        sa.Column("owner_subject", sa.Text, nullable=False),
        sa.Column("owner_issuer", sa.Text, nullable=False),
        sa.Column("caller", sa.JSON, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("task_id", sa.String(256), nullable=True),
        sa.Column("context_id", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text, nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_approvals_state", "approvals", ["state", "created_at"])
    op.create_index("ix_approvals_task", "approvals", ["target", "task_id"])
    op.create_index("ix_approvals_owner", "approvals", ["owner_subject", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_approvals_owner", table_name="approvals")
    op.drop_index("ix_approvals_task", table_name="approvals")
    op.drop_index("ix_approvals_state", table_name="approvals")
    op.drop_table("approvals")
