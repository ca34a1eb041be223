"""Alembic environment: runs on the connection `gateway.storage.db.upgrade` hands over."""

from alembic import context

from gateway.storage.db import TARGET_METADATA

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `switchboard db upgrade`, which provides the connection"
    )

context.configure(
    connection=connection,
    target_metadata=TARGET_METADATA,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
