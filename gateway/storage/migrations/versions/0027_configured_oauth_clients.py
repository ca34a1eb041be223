"""Clients registered out of band at the authorization servers of agents
whose users connect their own accounts:

- a gateway-run vendor agent's (`user_oauth` in its registration): the
  client's secret, sealed as the agent's API key is, in a column of its own
  (never in the shown configuration);
- an A2A agent's (`agent_oauth_clients`, set by an admin: its card cannot
  name one), the secret sealed; removed with the agent.

Revision ID: 0027_configured_oauth_clients
Revises: 0026_connections_of_agents
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0027_configured_oauth_clients"
down_revision = "0026_connections_of_agents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vendor_agents") as batch:
        batch.add_column(sa.Column("client_secret_sealed", sa.Text, nullable=True))
    op.create_table(
        "agent_oauth_clients",
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("client_id", sa.String(512), nullable=False),
        sa.Column("client_secret_sealed", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_oauth_clients")
    with op.batch_alter_table("vendor_agents") as batch:
        batch.drop_column("client_secret_sealed")
