"""`gateway_replicas`: which replicas run, and where the others reach each.

A 2025-11-25 MCP session lives in the process that opened it (the SDK keeps
its transport there). Its id now names that replica, and each replica
registers the address its siblings reach it at, so a request for a session
that lands on another replica behind a balancer without affinity is passed
on to the one holding it (`gateway.mcp.replicas`).

Revision ID: 0014_gateway_replicas
Revises: 0013_audit_event_width
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_gateway_replicas"
down_revision = "0013_audit_event_width"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_replicas",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_replicas")
