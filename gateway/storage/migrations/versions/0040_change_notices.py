"""Writes to the tables replicas keep copies of, told to them (PostgreSQL).

A statement trigger on each table of `gateway.storage.bell.TABLES` sends
``NOTIFY switchboard_changes, '<table>'`` with the writing transaction's
commit, so a replica listening (`gateway.storage.bell.ChangeBell`) need not
read those tables on a timer. SQLite has no notices: nothing to do there.

Revision ID: 0040_change_notices
Revises: 0039_audit_decided_on
Create Date: 2026-11-28
"""

from alembic import op

revision = "0040_change_notices"
down_revision = "0039_audit_decided_on"
branch_labels = None
depends_on = None

# As `gateway.storage.bell.TABLES` was when this revision was written (a
# migration does not follow later edits of the code), each with the updates
# that ring: only those of the columns replicas copy. An agent's health
# writes (its lease, every check) do not move `SqlAgentStore.fingerprint`
# (count, latest `updated_at`, revisions); an MCP server's health, server
# info and listing times are not its configuration (`SqlMcpStore.configs`).
TABLES = {
    "agents": "UPDATE OF revision, updated_at",
    "mcp_sets": "UPDATE",
    "mcp_tools": "UPDATE",
    "mcp_servers": (
        "UPDATE OF name, transport, url, command, resource, timeout_seconds, credential, "
        "credential_secret, registered_by, trusted_registrant, prefix_tools, updated_at"
    ),
    "policy_versions": "UPDATE",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION switchboard_changed() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('switchboard_changes', TG_TABLE_NAME);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    for table, updates in TABLES.items():
        op.execute(
            f"CREATE TRIGGER switchboard_changed AFTER INSERT OR {updates} OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION switchboard_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS switchboard_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS switchboard_changed()")
