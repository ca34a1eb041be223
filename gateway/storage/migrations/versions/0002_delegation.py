"""Delegated permissions: agent resource ids, agent credentials, the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The audience of tokens minted for an agent (RFC 8707 resource). Existing
    # agents get their first interface URL, as new registrations do by default.
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("resource", sa.Text, nullable=True))
    agents = sa.table(
        "agents", sa.column("id", sa.String), sa.column("card", sa.JSON), sa.column("resource")
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(agents.c.id, agents.c.card)).all():
        conn.execute(
            sa.update(agents)
            .where(agents.c.id == row.id)
            .values(resource=_first_interface(row.card) or f"urn:switchboard:agent:{row.id}")
        )
    op.create_index("ux_agents_resource", "agents", ["resource"], unique=True)

    op.create_table(
        "agent_credentials",
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=True),
        sa.Column("jwks", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("subject_issuer", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=True),
        sa.Column("actors", sa.JSON, nullable=False),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("action", sa.Text, nullable=True),
        sa.Column("scopes_requested", sa.Text, nullable=True),
        sa.Column("scopes_granted", sa.Text, nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("token_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_subject", "audit_events", ["subject", "id"])
    op.create_index("ix_audit_target", "audit_events", ["target", "id"])
    op.create_index("ix_audit_at", "audit_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_at", table_name="audit_events")
    op.drop_index("ix_audit_target", table_name="audit_events")
    op.drop_index("ix_audit_subject", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("agent_credentials")
    op.drop_index("ux_agents_resource", table_name="agents")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("resource")


def _first_interface(card: Any) -> str | None:
    interfaces = card.get("supportedInterfaces") if isinstance(card, dict) else None
    if isinstance(interfaces, list) and interfaces and isinstance(interfaces[0], dict):
        url = interfaces[0].get("url")
        return url if isinstance(url, str) and url else None
    return None
