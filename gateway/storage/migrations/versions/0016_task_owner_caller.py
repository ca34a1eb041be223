"""`a2a_tasks.owner_caller`: who made the call that started a task -- identity,
scopes, actor chain and client, never a token -- kept from its first record,
so a flow triggered by the task's end acts for that user with what their call
carried, and nothing more (`gateway.flows.triggers`).

Revision ID: 0016_task_owner_caller
Revises: 0015_flow_run_records
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_task_owner_caller"
down_revision = "0015_flow_run_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("a2a_tasks") as batch:
        batch.add_column(sa.Column("owner_caller", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("a2a_tasks") as batch:
        batch.drop_column("owner_caller")
