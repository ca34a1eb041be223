"""The A2A front door: task ownership records, push notification relays, and a
per-agent upstream timeout.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("timeout_seconds", sa.Float, nullable=True))

    op.create_table(
        "a2a_tasks",
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(256), primary_key=True),
        sa.Column("context_id", sa.String(256), nullable=True),
        sa.Column("owner_subject", sa.Text, nullable=False),
        sa.Column("owner_issuer", sa.Text, nullable=False),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task", sa.JSON, nullable=False),
    )
    op.create_index("ix_a2a_tasks_owner", "a2a_tasks", ["agent_id", "owner_subject", "updated_at"])
    op.create_index("ix_a2a_tasks_context", "a2a_tasks", ["agent_id", "context_id"])

    op.create_table(
        "a2a_push_configs",
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(256), primary_key=True),
        sa.Column("config_id", sa.String(256), primary_key=True),
        sa.Column("owner_subject", sa.Text, nullable=False),
        sa.Column("owner_issuer", sa.Text, nullable=False),
        sa.Column("relay_id", sa.String(64), nullable=False, unique=True),
        sa.Column("relay_token_hash", sa.String(128), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("a2a_push_configs")
    op.drop_index("ix_a2a_tasks_context", "a2a_tasks")
    op.drop_index("ix_a2a_tasks_owner", "a2a_tasks")
    op.drop_table("a2a_tasks")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("timeout_seconds")
