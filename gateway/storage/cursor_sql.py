"""`Sql` on the app's engine, by the DBAPI cursor of a SQLAlchemy connection
(`gateway.storage.statements` on PostgreSQL, and on an in-memory SQLite
database).

Each statement is compiled for the engine's dialect once, as SQLAlchemy
compiles it (its placeholders and bind casts, e.g. ``$1::VARCHAR`` for
asyncpg), with the bind and result processors of its typed columns; an
execution then costs the driver's work alone. Through `Connection.execute`
each also paid the cache key of its construct, an execution context and a
result object: ~75 µs of CPU of ~175 for a one-row read on PostgreSQL here.

What SQLAlchemy's execution adds that matters is kept: the connection's
transaction is the connection's (the DBAPI adapter begins it at the first
statement, `Connection.begin` commits or rolls it back); a driver error is
raised as SQLAlchemy raises it (`DBAPIError.instance`: `IntegrityError`
and the rest, which `gateway.storage.outages` reads), and one that means
the connection is gone invalidates it, so the pool does not hand it out
again (SQLAlchemy, "Dealing with Disconnects").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import is_exit_exception

from gateway.storage.db import lost
from gateway.storage.typed_statement import Statement

Processor = Callable[[Any], Any]
R = TypeVar("R")


class Compiled:
    """One statement compiled for one dialect: its SQL, its binds in order
    (each with its type's bind processor, as the dialect implements the
    type) and, once it has run, its result columns' result processors (the
    typed statement's table's columns, by name)."""

    def __init__(self, clause: Any, dialect: Dialect, statement: Statement | None) -> None:
        compiled = clause.compile(dialect=dialect)
        if not compiled.positional:  # every driver the gateway runs on is
            raise ValueError(f"{dialect.name}: a named paramstyle is not supported here")
        self.sql = str(compiled)
        self._dialect = dialect
        self._columns = {} if statement is None else dict(statement.table.c.items())
        self.binds: list[tuple[str, Processor | None]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()
        ]
        self._results: list[Processor | None] | None = None

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            params[name] if processor is None else processor(params[name])
            for name, processor in self.binds
        )

    def results(self, description: Sequence[Sequence[Any]]) -> list[Processor | None]:
        """Each result column's processor (None: the driver's value as it
        is), as SQLAlchemy finds it: the column's type as the dialect
        implements it, given the type the driver reported."""
        if self._results is None:
            found: list[Processor | None] = []
            for name, coltype, *_ in description:
                column = self._columns.get(name)
                impl = None if column is None else column.type.dialect_impl(self._dialect)
                found.append(
                    None if impl is None else impl.result_processor(self._dialect, coltype)
                )
            self._results = found  # only once every column's is known
        return self._results


class CursorSql:
    """`Sql` over one SQLAlchemy connection (in its transaction, if begun)."""

    def __init__(self, connection: Connection, compiled: dict[Any, Compiled]) -> None:
        self._connection = connection
        self._compiled = compiled  # shared by every operation on the engine

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        one = self._compile(_text(statement), None)
        return self._execute(one, one.parameters(params), lambda cursor: _tuples(cursor.fetchall()))

    def run(self, statement: str, params: Mapping[str, Any]) -> int:
        one = self._compile(_text(statement), None)
        return int(self._execute(one, one.parameters(params), lambda cursor: cursor.rowcount or 0))

    def typed(self, statement: Statement, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        clause = statement.clause
        if statement.locking_clause is not None and self._connection.dialect.name == "postgresql":
            clause = statement.locking_clause
        one = self._compile(clause, statement)

        def read(cursor: Any) -> list[dict[str, Any]]:
            if cursor.description is None:
                return [{"rowcount": int(cursor.rowcount or 0)}]
            names = [d[0] for d in cursor.description]
            processors = one.results(cursor.description)
            return [
                {
                    name: value if processor is None or value is None else processor(value)
                    for name, processor, value in zip(names, processors, row, strict=True)
                }
                for row in cursor.fetchall()
            ]

        return self._execute(one, one.parameters(params), read)

    def typed_many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            one = self._compile(statement.clause, statement)
            self._execute(one, [one.parameters(p) for p in rows], lambda _: None, many=True)

    def _compile(self, clause: Any, statement: Statement | None) -> Compiled:
        found = self._compiled.get(clause)
        if found is None:
            found = self._compiled[clause] = Compiled(clause, self._connection.dialect, statement)
        return found

    def _execute(
        self, one: Compiled, parameters: Any, read: Callable[[Any], R], *, many: bool = False
    ) -> R:
        dialect = self._connection.dialect
        dbapi_connection = self._connection.connection
        cursor = dbapi_connection.cursor()
        try:
            if many:
                cursor.executemany(one.sql, parameters)
            else:
                cursor.execute(one.sql, parameters)
            return read(cursor)
        except dialect.loaded_dbapi.Error as error:
            gone = dialect.is_disconnect(error, dbapi_connection, cursor)
            if gone:
                # As SQLAlchemy's execution does: this connection, and every
                # one pooled before it (at its next checkout: `db.lost`).
                lost(self._connection.engine)
                self._connection.invalidate(error)
            raise DBAPIError.instance(
                one.sql,
                parameters,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=dialect,
                ismulti=many,
            ) from error
        except BaseException as error:
            # Cancelled (or interrupted) inside the driver, perhaps between
            # its BEGIN and its answer: the connection's state is unknown, so
            # it is not pooled again (SQLAlchemy does the same for an exit
            # exception: `is_exit_exception`, its issue 6592).
            if is_exit_exception(error) and not self._connection.invalidated:
                self._connection.invalidate(error)
            raise
        finally:
            cursor.close()


def _tuples(rows: Sequence[Any]) -> list[Sequence[Any]]:
    return [tuple(row) for row in rows]


@functools.cache
def _text(statement: str) -> TextClause:
    """One clause per statement's text, so its compiled form is found again."""
    return text(statement)
