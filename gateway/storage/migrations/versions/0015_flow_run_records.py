"""`flow_runs.redacted_at`: when an ended run's stored record was rewritten
under its flow's redaction rules (`gateway.flows.retention`); an index on
`finished_at`, by which ended runs are deleted at the end of their retention;
and `flow_steps.usage`, the tokens a step's upstream says its answer cost.

Revision ID: 0015_flow_run_records
Revises: 0014_gateway_replicas
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_flow_run_records"
down_revision = "0014_gateway_replicas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("redacted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_flow_runs_finished", "flow_runs", ["finished_at"])
    with op.batch_alter_table("flow_steps") as batch:
        batch.add_column(sa.Column("usage", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flow_steps") as batch:
        batch.drop_column("usage")
    op.drop_index("ix_flow_runs_finished", table_name="flow_runs")
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("redacted_at")
