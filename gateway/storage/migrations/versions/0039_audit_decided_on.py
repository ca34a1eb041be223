"""What a delegation decision was made on, kept with its audit record
(`audit_events.decided_on`): the caller's scopes, the kind of action (skill,
tool, resource, prompt) and whether the policy asked for approval -- what a
what-if needs to decide the same call again under another policy
(`gateway.delegation.whatif`). NULL for a record that is no policy decision,
and for every record written before this revision.

Revision ID: 0039_audit_decided_on
Revises: 0038_api_keys
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0039_audit_decided_on"
down_revision = "0038_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("decided_on", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("decided_on")
