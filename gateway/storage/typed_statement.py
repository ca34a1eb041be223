"""One statement typed by its table: how `Sql.typed` writes its binds and
reads its rows on either engine (`gateway.storage.statements`).

A bind or result column named as one of the table's columns takes that
column's type, so a JSON or timestamp value goes in and comes out as
SQLAlchemy's own statements would have it: on PostgreSQL through the typed
clause, on SQLite's own connections converted here (`sqlite_params`,
`sqlite_row`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Table, bindparam, column, text


class Statement:
    """One statement on one table, its binds and result columns typed by the
    table's columns (a bind or result named as a column takes its type), so
    a JSON or timestamp value is written and read as SQLAlchemy would.

    A statement that returns no rows answers ``[{"rowcount": n}]``."""

    def __init__(self, table: Table, sql: str, *, for_update: bool = False) -> None:
        self.sql = " ".join(sql.split())
        self.table = table
        columns = table.c
        binds = dict.fromkeys(_BIND.findall(self.sql))
        typed = [bindparam(name, type_=columns[name].type) for name in binds if name in columns]
        selected = _selected(self.sql)

        def clause_of(sql: str) -> Any:
            clause: Any = text(sql).bindparams(*typed)
            if selected:
                clause = clause.columns(
                    *(columns[n] if n in columns else column(n) for n in selected)
                )
            return clause

        self.clause = clause_of(self.sql)
        # ``for_update``: a read of the rows the operation goes on to write.
        # On PostgreSQL they are locked until it commits (read committed would
        # let two writers each change what they read, the later undoing the
        # earlier); SQLite's runners hold the write lock for the whole
        # operation already (`BEGIN IMMEDIATE`, or one in-memory connection).
        self.locking_clause = clause_of(self.sql + " FOR UPDATE") if for_update else None
        self._json_binds = frozenset(n for n in binds if n in columns and _is_json(columns[n]))
        self._json_out = frozenset(c.name for c in columns if _is_json(c))
        self._time_out = frozenset(c.name for c in columns if isinstance(c.type, DateTime))

    def sqlite_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """As SQLAlchemy's SQLite dialect writes them: JSON as its text (None
        as ``null``, `JSON.none_as_null` being off), a timestamp as
        ``YYYY-MM-DD HH:MM:SS.ffffff`` (the zone dropped: every time the
        gateway writes is UTC)."""
        out: dict[str, Any] = {}
        for name, value in params.items():
            if name in self._json_binds:
                value = json.dumps(value)
            elif isinstance(value, datetime):
                value = value.strftime(_SQLITE_TIME)
            out[name] = value
        return out

    def sqlite_row(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in zip(names, row, strict=True):
            if isinstance(value, str) and name in self._json_out:
                # A JSON column has NUMERIC affinity in SQLite: a number was
                # stored as one, and comes back as one, as SQLAlchemy reads it.
                value = json.loads(value)
            elif value is not None and name in self._time_out:
                value = datetime.fromisoformat(value)
            out[name] = value
        return out


_BIND = re.compile(r"(?<![:\w]):(\w+)")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _is_json(col: Any) -> bool:
    return isinstance(col.type, JSON)


def _selected(sql: str) -> list[str]:
    """The result columns' names: a SELECT's list, or what RETURNING names."""
    upper = sql.upper()
    if upper.startswith("SELECT "):
        listed = sql[7 : upper.index(" FROM ")]
    elif " RETURNING " in upper:
        listed = sql[upper.index(" RETURNING ") + 11 :]
    else:
        return []
    return [part.strip().split(" ")[-1].split(".")[-1] for part in listed.split(",")]
