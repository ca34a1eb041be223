"""A console login under way is kept in the browser, sealed
(`gateway.console.login_state`), no longer in `console_logins`: every
anonymous visit to the console wrote a row there.

Revision ID: 0023_console_logins_dropped
Revises: 0022_agent_health_events
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_console_logins_dropped"
down_revision = "0022_agent_health_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Logins under way are lost: their browsers start again at the login page.
    op.drop_index("ix_console_logins_expires", table_name="console_logins")
    op.drop_table("console_logins")


def downgrade() -> None:
    op.create_table(
        "console_logins",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("code_verifier", sa.String(128), nullable=True),
        sa.Column("return_to", sa.Text, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_logins_expires", "console_logins", ["expires_at"])
