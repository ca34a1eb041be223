"""Nothing lost when a dependency fails: used assertion ids in the database,
and A2A tasks the gateway lost contact with, to reconcile.

* `used_assertions`: each client assertion `jti` accepted at `/oauth/token`
  (hashed with its client id) until it expires, so replay protection survives
  a Redis restart, failover or flush (`gateway.delegation.replay`).
* `a2a_tasks.reconcile_*`: set when the stream that followed a task broke (or
  a `GetTask` could not reach the agent) while the task was still running; a
  background job asks the agent for it with backoff, and fails it after
  `a2a_reconcile_max_seconds` (`gateway.agents.reconcile`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_assertions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_used_assertions_expiry", "used_assertions", ["expires_at"])
    op.add_column("a2a_tasks", sa.Column("reconcile_at", sa.DateTime(timezone=True)))
    op.add_column("a2a_tasks", sa.Column("reconcile_since", sa.DateTime(timezone=True)))
    op.add_column("a2a_tasks", sa.Column("reconcile_attempts", sa.Integer))
    op.add_column("a2a_tasks", sa.Column("reconcile_caller", sa.JSON))
    op.create_index("ix_a2a_tasks_reconcile", "a2a_tasks", ["reconcile_at"])


def downgrade() -> None:
    op.drop_index("ix_a2a_tasks_reconcile", table_name="a2a_tasks")
    with op.batch_alter_table("a2a_tasks") as batch:
        batch.drop_column("reconcile_caller")
        batch.drop_column("reconcile_attempts")
        batch.drop_column("reconcile_since")
        batch.drop_column("reconcile_at")
    op.drop_index("ix_used_assertions_expiry", table_name="used_assertions")
    op.drop_table("used_assertions")
