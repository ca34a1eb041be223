"""`audit_events.event` and `.outcome` wide enough for what the gateway records.

The A2A front door records `a2a.<operation>`, and four push-notification
operations are longer than 32 characters
(`a2a.DeleteTaskPushNotificationConfig` is 36). PostgreSQL refused those rows
(value too long for character varying(32)); the audit writer writes a refused
row's neighbours one by one and reports the refused row in the log, so the
call went on but its audit record was lost. 64 leaves room for the longest
name with margin; `tests/gateway/delegation/test_audit_event_width.py` checks every
event name the code records against the column. The outcome of a call that
ended with an A2A error is `a2a_error:<the error's class>`, cut to 32
characters until now (`a2a_error:InvalidAgentResponseEr`): 64 as well.

SQLite does not enforce a VARCHAR's length, so its table is left as it is (a
rebuild of the whole audit table for nothing).

Revision ID: 0013_audit_event_width
Revises: 0012_task_skill
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_audit_event_width"
down_revision = "0012_task_skill"
branch_labels = None
depends_on = None


COLUMNS = ("event", "outcome")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for column in COLUMNS:
        op.alter_column(
            "audit_events",
            column,
            type_=sa.String(64),
            existing_type=sa.String(32),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for column in COLUMNS:
        # Values longer than 32 would not fit back: cut them rather than fail.
        rows = sa.table("audit_events", sa.column(column, sa.String))
        value = rows.c[column]
        op.execute(
            rows.update()
            .where(sa.func.length(value) > 32)
            .values({column: sa.func.left(value, 32)})
        )
        op.alter_column(
            "audit_events",
            column,
            type_=sa.String(32),
            existing_type=sa.String(64),
            existing_nullable=False,
        )
