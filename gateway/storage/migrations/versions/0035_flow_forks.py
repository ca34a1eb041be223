"""A run forked from another (`gateway.flows.forks`): `flow_runs.forked_from`
and `fork_step` say which run and which of its steps the fork started from;
`flow_steps.reused_from` marks a step's record taken over from the origin
(its output reused, nothing sent again). An index finds a run's forks.

Revision ID: 0035_flow_forks
Revises: 0034_flow_runs_created_index
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0035_flow_forks"
down_revision = "0034_flow_runs_created_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    runs = {c["name"] for c in inspector.get_columns("flow_runs")}
    steps = {c["name"] for c in inspector.get_columns("flow_steps")}
    with op.batch_alter_table("flow_runs") as batch:
        if "forked_from" not in runs:
            batch.add_column(sa.Column("forked_from", sa.String(64), nullable=True))
        if "fork_step" not in runs:
            batch.add_column(sa.Column("fork_step", sa.String(64), nullable=True))
    if "reused_from" not in steps:
        with op.batch_alter_table("flow_steps") as batch:
            batch.add_column(sa.Column("reused_from", sa.String(64), nullable=True))
    existing = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("flow_runs")}
    if "ix_flow_runs_forked_from" not in existing:
        op.create_index("ix_flow_runs_forked_from", "flow_runs", ["forked_from"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_forked_from", table_name="flow_runs")
    with op.batch_alter_table("flow_steps") as batch:
        batch.drop_column("reused_from")
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("fork_step")
        batch.drop_column("forked_from")
