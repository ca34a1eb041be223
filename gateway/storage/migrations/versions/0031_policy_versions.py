"""The policy as admins edit it through the API (`PUT /policies`): each
saved version, the newest in force on every replica unless a policy file is
set (`gateway.delegation.policy_versions`).

Revision ID: 0031_policy_versions
Revises: 0030_audit_export
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0031_policy_versions"
down_revision = "0030_audit_export"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        # The version it was saved over (0: the built-in default). Unique: two
        # admins saving over the same version, one of them is refused.
        sa.Column("replaces", sa.Integer, nullable=False, unique=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("author_subject", sa.Text, nullable=False),
        sa.Column("author_issuer", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
