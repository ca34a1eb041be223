"""An index on `audit_events (event, id)`: `GET /audit?kind=change` asks for
the records of a few event names, newest first (`CHANGE_EVENTS`); without it
a page of changes walked the whole log backwards past every call.

On a large PostgreSQL `audit_events` the index is built while the migration
holds the table (writes wait), as migration 0030's was: run it in a quiet
moment, or build `ix_audit_event` beforehand with `CREATE INDEX
CONCURRENTLY` and this migration finds it there.

Revision ID: 0033_audit_event_index
Revises: 0032_audit_target_width
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0033_audit_event_index"
down_revision = "0032_audit_target_width"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("audit_events")}
    if "ix_audit_event" not in existing:
        op.create_index("ix_audit_event", "audit_events", ["event", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_event", table_name="audit_events")
