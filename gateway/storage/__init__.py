"""Persistence: the engine (SQLite or PostgreSQL), tables, migrations, run state."""
