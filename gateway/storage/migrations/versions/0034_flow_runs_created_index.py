"""An index on `flow_runs (created_at)`: `GET /runs` lists every flow's runs,
newest first (an admin's view across flows, the console's Runs page); the
indexes there were per flow and per owner.

Revision ID: 0034_flow_runs_created_index
Revises: 0033_audit_event_index
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0034_flow_runs_created_index"
down_revision = "0033_audit_event_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("flow_runs")}
    if "ix_flow_runs_created" not in existing:
        op.create_index("ix_flow_runs_created", "flow_runs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_created", table_name="flow_runs")
