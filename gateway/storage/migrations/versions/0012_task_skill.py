"""The skill each A2A task was started for: `a2a_tasks.skill`.

A message that continues a task (`taskId`) is decided for the skill the task
was started for, not for whatever skill the message names: an agent continues
a task's own skill. The gateway records the skill decided with the task when
it first records it. Tasks recorded before this migration keep NULL, as does
a task started naming no skill to an agent with several: continuing one is
decided as for the strictest skill (`gateway.delegation.handoffs.message_skill`).

Revision ID: 0012_task_skill
Revises: 0009
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_task_skill"
# Re-chain onto the head of main at merge (0010 and 0011 come from other branches).
down_revision = "0011_flows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("a2a_tasks") as batch:
        batch.add_column(sa.Column("skill", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("a2a_tasks") as batch:
        batch.drop_column("skill")
