"""`audit_events.target` wide enough for what admins' changes name.

A change to a virtual MCP server is recorded with the target
`mcp-set:{name}`, and a set's name may be 64 characters: up to 72, and
PostgreSQL refused the record (value too long for character varying(64)),
so the change went unaudited. 128 holds it with margin. On PostgreSQL a
VARCHAR made longer is a change of the catalog only (no table rewrite, no
index rebuild), even on a large audit table.

SQLite does not enforce a VARCHAR's length, so its table is left as it is (a
rebuild of the whole audit table for nothing).

Revision ID: 0032_audit_target_width
Revises: 0031_policy_versions
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0032_audit_target_width"
down_revision = "0031_policy_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(
        "audit_events",
        "target",
        type_=sa.String(128),
        existing_type=sa.String(64),
        existing_nullable=True,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    # Targets longer than 64 would not fit back: cut them rather than fail.
    rows = sa.table("audit_events", sa.column("target", sa.String))
    op.execute(
        rows.update()
        .where(sa.func.length(rows.c.target) > 64)
        .values(target=sa.func.left(rows.c.target, 64))
    )
    op.alter_column(
        "audit_events",
        "target",
        type_=sa.String(64),
        existing_type=sa.String(128),
        existing_nullable=True,
    )
