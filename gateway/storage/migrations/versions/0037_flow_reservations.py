"""Budgets reserved, not only checked: `flow_reservations` holds what the
calls in flight of a user's runs of a flow may cost, and `flow_budget_locks`
the row a reservation for that user and flow writes first, so that two made
at once (on any replica) are made one after the other
(`gateway.flows.reservations`).

Revision ID: 0037_flow_reservations
Revises: 0036_approvals_txn
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0037_flow_reservations"
down_revision = "0036_approvals_txn"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_reservations",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("step_id", sa.String(64), primary_key=True),
        sa.Column("flow_id", sa.String(64), nullable=False),
        sa.Column("owner_subject", sa.Text, nullable=False),
        sa.Column("owner_issuer", sa.Text, nullable=False),
        sa.Column("amount", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_flow_reservations_owner",
        "flow_reservations",
        ["flow_id", "owner_subject", "owner_issuer"],
    )
    op.create_table(
        "flow_budget_locks",
        sa.Column("flow_id", sa.String(64), primary_key=True),
        sa.Column("owner_subject", sa.Text, primary_key=True),
        sa.Column("owner_issuer", sa.Text, primary_key=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flow_budget_locks")
    op.drop_index("ix_flow_reservations_owner", table_name="flow_reservations")
    op.drop_table("flow_reservations")
