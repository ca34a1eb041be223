"""Connected accounts at gateway-run vendor agents (`user_oauth` on an
OpenAI-compatible or REST agent): the pre-registered client's secret, sealed
as the agent's API key is, in a column of its own (never in the shown
configuration).

Revision ID: 0027_vendor_user_oauth
Revises: 0026_connections_of_agents
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0027_vendor_user_oauth"
down_revision = "0026_connections_of_agents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vendor_agents") as batch:
        batch.add_column(sa.Column("client_secret_sealed", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vendor_agents") as batch:
        batch.drop_column("client_secret_sealed")
