"""Two indexes: the audit by trace (`GET /audit?trace=`: one delegation's
every hop), and deferred calls by entity key (`Deferrals.tick` releases per
entity's key, in rank order, whatever rule holds each).

Revision ID: 0019_trace_and_entity_indexes
Revises: 0018_coordination_deferrals
Create Date: 2026-11-23
"""

from alembic import op

revision = "0019_trace_and_entity_indexes"
down_revision = "0018_coordination_deferrals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_trace", "audit_events", ["trace_id", "id"])
    op.create_index(
        "ix_coordination_deferrals_entity", "coordination_deferrals", ["state", "entity", "key"]
    )


def downgrade() -> None:
    op.drop_index("ix_coordination_deferrals_entity", "coordination_deferrals")
    op.drop_index("ix_audit_trace", "audit_events")
