"""Tool search: each tool `/mcp` can offer, as a document the database's own
full-text search ranks (`registry.tool_index`); and a virtual server's
search mode (`mcp_sets.tool_search`).

SQLite: an FTS5 table over `tool_docs` kept by triggers (the "external
content" pattern of https://sqlite.org/fts5.html section 4.4.3), Porter
stemming. PostgreSQL: a weighted `tsvector` column the database computes
(name and title A, description B, parameters C) under a GIN index.

Revision ID: 0029_tool_search
Revises: 0028_mcp_sets
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0029_tool_search"
down_revision = "0028_mcp_sets"
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE VIRTUAL TABLE tool_docs_fts USING fts5(
        name_words, title, description, params,
        content='tool_docs', content_rowid='id', tokenize='porter unicode61')""",
    """CREATE TRIGGER tool_docs_added AFTER INSERT ON tool_docs BEGIN
        INSERT INTO tool_docs_fts(rowid, name_words, title, description, params)
        VALUES (new.id, new.name_words, new.title, new.description, new.params);
    END""",
    """CREATE TRIGGER tool_docs_removed AFTER DELETE ON tool_docs BEGIN
        INSERT INTO tool_docs_fts(tool_docs_fts, rowid, name_words, title, description, params)
        VALUES ('delete', old.id, old.name_words, old.title, old.description, old.params);
    END""",
    """CREATE TRIGGER tool_docs_changed AFTER UPDATE ON tool_docs BEGIN
        INSERT INTO tool_docs_fts(tool_docs_fts, rowid, name_words, title, description, params)
        VALUES ('delete', old.id, old.name_words, old.title, old.description, old.params);
        INSERT INTO tool_docs_fts(rowid, name_words, title, description, params)
        VALUES (new.id, new.name_words, new.title, new.description, new.params);
    END""",
]
_POSTGRESQL = [
    """ALTER TABLE tool_docs ADD COLUMN document tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name_words || ' ' || title), 'A')
        || setweight(to_tsvector('english', description), 'B')
        || setweight(to_tsvector('english', params), 'C')) STORED""",
    "CREATE INDEX tool_docs_document ON tool_docs USING gin (document)",
]


def upgrade() -> None:
    op.create_table(
        "tool_docs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("name_words", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE if dialect == "sqlite" else _POSTGRESQL:
        op.execute(statement)
    op.add_column(
        "mcp_sets",
        sa.Column("tool_search", sa.String(16), nullable=False, server_default="off"),
    )


def downgrade() -> None:
    with op.batch_alter_table("mcp_sets") as batch:  # SQLite before 3.35 has no DROP COLUMN
        batch.drop_column("tool_search")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE tool_docs_fts")
    op.drop_table("tool_docs")
