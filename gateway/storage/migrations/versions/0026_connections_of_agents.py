"""Connected accounts at A2A agents too: a connection's upstream is an MCP
server or an agent (the two share one id space, `registry.mcp_store`), so
its foreign key to `mcp_servers` goes; removing either kind of upstream
removes and revokes its connections in code (it must reach the vendor to
revoke, which a cascade cannot). And `consent_waits`: an A2A call held until
its user connects their account at the agent (`gateway.agents.consents`).

Revision ID: 0026_connections_of_agents
Revises: 0025_upstream_connections
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0026_connections_of_agents"
down_revision = "0025_upstream_connections"
branch_labels = None
depends_on = None

# SQLite's foreign keys have no names: batch mode names them by this
# convention to find the one to drop (Alembic, "Dropping Unnamed or Named
# Foreign Key Constraints"). PostgreSQL named them `<table>_<column>_fkey`.
_NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def upgrade() -> None:
    for table in ("upstream_connections", "upstream_clients"):
        with op.batch_alter_table(table, naming_convention=_NAMING) as batch:
            batch.drop_constraint(f"{table}_upstream_fkey", type_="foreignkey")
    op.create_table(
        "consent_waits",
        sa.Column(
            "approval_id",
            sa.String(40),
            sa.ForeignKey("approvals.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("upstream", sa.String(64), nullable=False),
        sa.Column("owner_subject", sa.Text, nullable=False),
        sa.Column("owner_issuer", sa.Text, nullable=False),
        # A step-up: the connection (id:version) that lacked the scope; only
        # another (the user connected again) releases the call.
        sa.Column("refused_connection", sa.String(80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_consent_waits_user",
        "consent_waits",
        ["upstream", "owner_issuer", "owner_subject"],
    )


def downgrade() -> None:
    op.drop_index("ix_consent_waits_user", table_name="consent_waits")
    op.drop_table("consent_waits")
    for table in ("upstream_connections", "upstream_clients"):
        # Connections at agents cannot come back under a key to mcp_servers.
        op.execute(f"DELETE FROM {table} WHERE upstream NOT IN (SELECT id FROM mcp_servers)")  # noqa: S608 - names from this file
    for table in ("upstream_connections", "upstream_clients"):
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"{table}_upstream_fkey", "mcp_servers", ["upstream"], ["id"], ondelete="CASCADE"
            )
