"""Flows: definitions and their versions, runs, their steps and durable grants.

Revision ID: 0011_flows
Revises: 0009
Create Date: 2026-11-24

Named "0011_flows" rather than "0010": another branch may add a 0010; when
both land, this one's down_revision becomes that one's id and nothing else
changes. DBOS Transact keeps its own tables (`gateway.flows.engine`): in the
same SQLite file, or in the `dbos` schema of the same PostgreSQL database; it
creates and migrates them itself when the flow engine first starts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_flows"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "flow_versions",
        sa.Column("flow_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "flow_grants",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("actors", sa.JSON, nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Text, nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
    )
    op.create_index("ix_flow_grants_run", "flow_grants", ["run_id"])
    op.create_index("ix_flow_grants_subject", "flow_grants", ["subject", "issuer"])
    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("flow_id", sa.String(64), nullable=False),
        sa.Column("flow_version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("owner_subject", sa.Text, nullable=False),
        sa.Column("owner_issuer", sa.Text, nullable=False),
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("input", sa.JSON, nullable=False),
        sa.Column("output", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("context_id", sa.String(256), nullable=False),
        sa.Column("current_step", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_flow_runs_flow", "flow_runs", ["flow_id", "created_at"])
    op.create_index("ix_flow_runs_owner", "flow_runs", ["owner_subject", "created_at"])
    op.create_table(
        "flow_steps",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("step_id", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("action", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("input", sa.JSON, nullable=True),
        sa.Column("output", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("upstream_task_id", sa.String(256), nullable=True),
        sa.Column("token", sa.JSON, nullable=True),
        sa.Column("approval_id", sa.String(40), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("flow_steps")
    op.drop_index("ix_flow_runs_owner", table_name="flow_runs")
    op.drop_index("ix_flow_runs_flow", table_name="flow_runs")
    op.drop_table("flow_runs")
    op.drop_index("ix_flow_grants_subject", table_name="flow_grants")
    op.drop_index("ix_flow_grants_run", table_name="flow_grants")
    op.drop_table("flow_grants")
    op.drop_table("flow_versions")
    op.drop_table("flows")
