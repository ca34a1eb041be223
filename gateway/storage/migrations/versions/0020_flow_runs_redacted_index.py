"""Runs by when their record was rewritten under `redact:`: the retention pass
looks again, each minute, at the runs rewritten in the last hour for an engine
copy left behind (`gateway.flows.retention`).

Revision ID: 0020_flow_runs_redacted_index
Revises: 0019_trace_and_entity_indexes
Create Date: 2026-11-23
"""

from alembic import op

revision = "0020_flow_runs_redacted_index"
down_revision = "0019_trace_and_entity_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_flow_runs_redacted", "flow_runs", ["redacted_at"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_redacted", "flow_runs")
