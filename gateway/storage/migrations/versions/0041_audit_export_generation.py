"""The audit export's streams held by the one fenced lease
(`gateway.storage.leases`): `audit_export_streams.lease_generation`, raised
by every claim of a stream and checked by every write its holder makes.
`lease_owner` names the holding replica from now on (a writer before), and
`lease_until` is the older gateways' time lease, set to one that never
passes by this gateway (so an older one never takes its streams).

Revision ID: 0041_audit_export_generation
Revises: 0040_change_notices
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0041_audit_export_generation"
down_revision = "0040_change_notices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "audit_export_streams",
        sa.Column("lease_generation", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_export_streams") as batch:
        batch.drop_column("lease_generation")
