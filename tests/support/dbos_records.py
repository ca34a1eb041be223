"""What DBOS recorded of a flow run, read from its own tables: its system
database is the gateway's own (tables in schema ``dbos`` on PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text

from gateway.flows.engine import dbos_table as engine_table
from gateway.flows.engine import system_database_url

# (function id, function name, output as JSON-decoded, None if none)
Operation = tuple[int, str, Any]


def dbos_table(engine: Engine, table: str) -> str:
    """``table`` of DBOS's, as named on ``engine``'s database."""
    return engine_table(engine.dialect.name, table)


@contextmanager
def system_engine(database_url: str) -> Iterator[Engine]:
    """DBOS's database of the gateway at ``database_url``, as its drivers open it."""
    engine = create_engine(system_database_url(database_url))
    try:
        yield engine
    finally:
        engine.dispose()


def operations(database_url: str, run_id: str) -> list[Operation]:
    """The run's recorded operations, in their order."""
    with system_engine(database_url) as engine, engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT function_id, function_name, output FROM "  # noqa: S608 -- ours
                f"{dbos_table(engine, 'operation_outputs')} "
                "WHERE workflow_uuid = :run ORDER BY function_id"
            ),
            {"run": run_id},
        ).all()
    return [(int(r[0]), str(r[1]), json.loads(r[2]) if r[2] else None) for r in rows]


def workflow_state(database_url: str, run_id: str) -> str | None:
    """DBOS's status of the run's workflow (``SUCCESS`` once its last step's
    output is recorded), None before it is stored."""
    with system_engine(database_url) as engine, engine.connect() as conn:
        return conn.execute(
            text(
                f"SELECT status FROM {dbos_table(engine, 'workflow_status')} "  # noqa: S608
                "WHERE workflow_uuid = :run"
            ),
            {"run": run_id},
        ).scalar_one_or_none()
