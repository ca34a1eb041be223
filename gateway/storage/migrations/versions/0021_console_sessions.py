"""The web console's server-side sessions and logins under way (`gateway.console`).

Revision ID: 0021_console_sessions
Revises: 0020_flow_runs_redacted_index
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_console_sessions"
down_revision = "0020_flow_runs_redacted_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])
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


def downgrade() -> None:
    op.drop_index("ix_console_logins_expires", table_name="console_logins")
    op.drop_table("console_logins")
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_table("console_sessions")
