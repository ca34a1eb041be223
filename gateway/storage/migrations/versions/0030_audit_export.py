"""The audit export to a SIEM (`gateway.audit_export`): who wrote each audit
record (`audit_events.writer`), each sink's position in each writer's
records, and the records a sink could not take (dead letters).

Revision ID: 0030_audit_export
Revises: 0029_tool_search
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0030_audit_export"
down_revision = "0029_tool_search"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("writer", sa.String(64), nullable=True))
    op.create_index("ix_audit_writer", "audit_events", ["writer", "id"])
    op.create_table(
        "audit_export_streams",
        sa.Column("sink", sa.String(32), primary_key=True),
        sa.Column("writer", sa.String(64), primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("batch_until", sa.BigInteger, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_dead_letters",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("audit_id", sa.BigInteger, nullable=False),
        sa.Column("writer", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index("ix_dead_letters_sink", "audit_dead_letters", ["sink", "id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_sink", "audit_dead_letters")
    op.drop_table("audit_dead_letters")
    op.drop_table("audit_export_streams")
    op.drop_index("ix_audit_writer", "audit_events")
    with op.batch_alter_table("audit_events") as batch:  # SQLite before 3.35 has no DROP COLUMN
        batch.drop_column("writer")
