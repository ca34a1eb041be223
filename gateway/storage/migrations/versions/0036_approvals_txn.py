"""The work a held call was made under (`Caller.txn`, its token's ``txn``
claim): `approvals.txn`, indexed with the state, so a flow's step finds the
pending approval of a call its agent made onwards without reading its user's
approvals (`gateway.delegation.approval_store.Approvals.pending_under`).

Revision ID: 0036_approvals_txn
Revises: 0035_flow_forks
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0036_approvals_txn"
down_revision = "0035_flow_forks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("approvals")}
    if "txn" not in columns:
        with op.batch_alter_table("approvals") as batch:
            batch.add_column(sa.Column("txn", sa.String(160), nullable=True))
    existing = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("approvals")}
    if "ix_approvals_txn" not in existing:
        op.create_index("ix_approvals_txn", "approvals", ["txn", "state"])


def downgrade() -> None:
    op.drop_index("ix_approvals_txn", table_name="approvals")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("txn")
