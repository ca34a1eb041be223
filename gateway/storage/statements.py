"""A lean way to run a store's hot statements: one transaction in one step.

Some statements run on every call (a task's record, a flow step's, the
coordination rules' state). Through the app's engine each costs the building
of SQLAlchemy constructs and their cache keys, and -- on SQLite -- a thread
hop per statement, BEGIN and COMMIT (aiosqlite), which together cost more
than SQLite running them (bench/coordination.py, bench/flows.py). A store
writes such an operation as one plain function over `Sql` (statements
written out once, named ``:binds``) and hands it to its `StatementRunner`:

* SQLite: on `sqlite3` connections of the runner's own, at once on the
  event loop when the write lock is free, else in a worker thread that waits
  for it (`_SqliteConnections`);
* PostgreSQL (and an in-memory SQLite database, which a connection of the
  runner's own would not see): through the app's engine (`run_sync`).

Values are written and read as the engine's column types would
(`gateway.storage.typed_statement.Statement` names the table whose columns
type its binds and results), so rows written here and through SQLAlchemy
read the same either way.

Durability: on SQLite these transactions commit without waiting for the disk
(`synchronous=NORMAL` in WAL mode on the runner's connections). The wait was
most of an operation's cost (an fsync: 0.4-2 ms here). The gateway crashing
loses nothing; the machine losing power may forget the last fraction of a
second of changes, and never leaves the file inconsistent. The rest of the
file keeps its settings. On PostgreSQL a commit waits as every other does.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from gateway.storage.cursor_sql import Compiled, CursorSql
from gateway.storage.sqlite_checkpoints import checkpointed_here
from gateway.storage.sqlite_gate import FileGate, gate_for
from gateway.storage.typed_statement import Statement

T = TypeVar("T")
_BUSY_SECONDS = 15
_PATIENT_SECONDS = 0.005
_PATIENT_TRIES = 200  # a second, then the runner's thread waits for the lock


class Sql(Protocol):
    """Runs one statement (named ``:binds``) in the operation's transaction."""

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[Sequence[Any]]: ...

    def run(self, statement: str, params: Mapping[str, Any]) -> int:
        """The number of rows it changed."""

    def typed(self, statement: Statement, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A `Statement`'s rows as dicts, values as the table's column types read."""

    def typed_many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        """A `Statement` that returns nothing, once per ``rows``' item (executemany)."""


class StatementRunner(Protocol):
    async def __call__(self, operation: Callable[..., T], *args: Any) -> T: ...

    async def read(self, operation: Callable[..., T], *args: Any) -> T:
        """An operation that writes nothing."""

    async def patiently(self, operation: Callable[..., T], *args: Any) -> T:
        """An operation nobody waits for at once (a batch of records): on
        SQLite run on the event loop's connection as soon as the write lock
        is free, tried again every `_PATIENT_SECONDS` while it is taken (up
        to `_PATIENT_TRIES`, then in the runner's thread)."""

    def soon(self, operation: Callable[..., Any], *args: Any) -> None:
        """Run ``operation`` after every one already started, unawaited."""

    def now(self, operation: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        """``operation`` run at once on the event loop if nothing need be
        waited for (SQLite, its write lock free): (True, its result); else
        nothing done, (False, None). Nothing in it can be cancelled halfway."""

    async def aclose(self) -> None: ...


def statement_runner(engine: AsyncEngine) -> StatementRunner:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return _SqliteConnections(url.database)
    return _AsyncEngine(engine)


class _SqliteConnections:
    """Connections of the store's own to the gateway's file.

    An operation runs at once on the event loop's connection when the file's
    write lock is free (SQLite's `BEGIN IMMEDIATE` with no wait): ~0.1 ms,
    where a hop to a thread and back costs more than that here. When another
    writer has the lock, the operation goes to one worker thread whose
    connection waits for it (busy_timeout), so the loop never waits on a lock.
    No connection of the process checkpoints the WAL in its commits (a
    disk write the loop would wait for) short of a backstop: a background
    thread does (`gateway.storage.sqlite_checkpoints`)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._on_loop: sqlite3.Connection | None = None
        self._on_thread: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="coordination-sqlite")
        self._gate = gate_for(path)

    def _loop_connection(self) -> sqlite3.Connection:
        if self._on_loop is None:
            self._on_loop = _connect(self._path, busy_seconds=0)
        return self._on_loop

    async def __call__(self, operation: Callable[..., T], *args: Any) -> T:
        done, result = self._on_loop_if_free(operation, args)
        if done:
            return cast(T, result)
        return await self._in_thread(operation, args)

    def now(self, operation: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        return self._on_loop_if_free(operation, args)

    async def patiently(self, operation: Callable[..., T], *args: Any) -> T:
        # On the loop, tried again while the lock is taken: in the thread
        # the gate would be held while that thread waits, at each step, for
        # the interpreter's lock from a busy loop (5 ms a switch) -- 200-640
        # ms for an audit batch of 36-100 rows under `bench.tool_catalog`.
        for _ in range(_PATIENT_TRIES):
            done, result = self._on_loop_if_free(operation, args)
            if done:
                return cast(T, result)
            await asyncio.sleep(_PATIENT_SECONDS)
        return await self._in_thread(operation, args)

    def _on_loop_if_free(
        self, operation: Callable[..., T], args: tuple[Any, ...]
    ) -> tuple[bool, T | None]:
        """``operation`` run on the loop's connection if the write lock is
        free now (True, its result), else nothing done (False, None)."""
        on_loop = self._loop_connection()
        # This process's other writers first (`sqlite_gate`), then SQLite's
        # lock against other processes' -- neither waited for on the loop.
        if not self._gate.acquire(blocking=False):
            return False, None
        try:
            on_loop.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # another process writes
            self._gate.release()
            return False, None
        except BaseException:
            self._gate.release()
            raise
        with _letting_go(self._gate):
            return True, _in_transaction(on_loop, operation, args)

    async def _in_thread(self, operation: Callable[..., T], args: tuple[Any, ...]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._waiting, operation, args)

    async def read(self, operation: Callable[..., T], *args: Any) -> T:
        # In WAL mode a reader never waits for a writer: always on the loop.
        on_loop = self._loop_connection()
        on_loop.execute("BEGIN")
        return _in_transaction(on_loop, operation, args)

    def soon(self, operation: Callable[..., Any], *args: Any) -> None:
        self._thread.submit(self._waiting, operation, args)

    def _waiting(self, operation: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._on_thread is None:
            self._on_thread = _connect(self._path, busy_seconds=_BUSY_SECONDS)
        # The write lock taken at BEGIN, waiting for it (busy_timeout): a
        # deferred transaction that reads and then writes gets SQLITE_BUSY at
        # once when another process wrote in between, with no wait.
        if not self._gate.acquire(timeout=_BUSY_SECONDS):
            raise sqlite3.OperationalError("database is locked")
        with _letting_go(self._gate):
            self._on_thread.execute("BEGIN IMMEDIATE")
            return _in_transaction(self._on_thread, operation, args)

    def _close_thread(self) -> None:
        if self._on_thread is not None:
            self._on_thread.close()

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_thread)
        self._thread.shutdown(wait=False)
        if self._on_loop is not None:
            self._on_loop.close()
            self._on_loop = None


@contextlib.contextmanager
def _letting_go(gate: FileGate) -> Iterator[None]:
    try:
        yield
    finally:
        gate.release()


def _connect(path: str, busy_seconds: int) -> sqlite3.Connection:
    # isolation_level None: no transactions of the driver's own (BEGIN
    # IMMEDIATE, by the caller); check_same_thread off: opened by the thread
    # that uses it, but closed by the store.
    # Set up waiting for the file, whatever ``busy_seconds``: the first
    # statement reads the schema, and a file whose last other connection is
    # closing (its checkpoint under an exclusive lock) or whose WAL is being
    # recovered answers "database is locked" at once to a connection that
    # does not wait -- a few ms, once, at the opening.
    connection = sqlite3.connect(
        path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False
    )
    if busy_seconds:
        # The app's engine made the file WAL already (a setting of the file);
        # said again where waiting for a lock is allowed.
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # see the module's doc
    # As on the engine's connections (`gateway.storage.db`): a row naming a
    # registry row that is gone is refused, and a cascade is kept.
    connection.execute("PRAGMA foreign_keys=ON")
    # No checkpoint in its commits short of a backstop: a disk write the
    # loop would wait for (`gateway.storage.sqlite_checkpoints`).
    checkpointed_here(connection, path, gate_for(path))
    connection.execute(f"PRAGMA busy_timeout={busy_seconds * 1000}")
    return connection


def _in_transaction(
    connection: sqlite3.Connection, operation: Callable[..., T], args: tuple[Any, ...]
) -> T:
    """``operation`` in the transaction just begun: committed, or rolled back
    when it raises."""
    try:
        result = operation(_Sqlite3(connection), *args)
        connection.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back by itself (a full disk); a COMMIT that
        # failed leaves it open, and the connection's next BEGIN would fail.
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise
    return result


class _Sqlite3:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        return self._connection.execute(statement, params).fetchall()

    def run(self, statement: str, params: Mapping[str, Any]) -> int:
        return self._connection.execute(statement, params).rowcount

    def typed(self, statement: Statement, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        cursor = self._connection.execute(statement.sql, statement.sqlite_params(params))
        if cursor.description is None:
            return [{"rowcount": cursor.rowcount}]
        names = [d[0] for d in cursor.description]
        return [statement.sqlite_row(names, row) for row in cursor.fetchall()]

    def typed_many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        self._connection.executemany(statement.sql, [statement.sqlite_params(p) for p in rows])


class _AsyncEngine:
    """PostgreSQL (and an in-memory SQLite database, which a connection of
    the store's own would not see): the app's engine, driven as its
    ``run_sync`` drives it, in one greenlet an operation: checkout, BEGIN,
    the statements, COMMIT and checkin (``engine.begin()`` and ``run_sync``
    took five, ~100 µs more an operation)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sync = engine.sync_engine
        self._pending: set[asyncio.Task[Any]] = set()
        self._reads: Engine | None = None
        self._compiled: dict[Any, Compiled] = {}

    async def __call__(self, operation: Callable[..., T], *args: Any) -> T:
        return await greenlet_spawn(self._in_transaction, operation, args)

    def _in_transaction(self, operation: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._sync.begin() as conn:
            return operation(CursorSql(conn, self._compiled), *args)

    async def read(self, operation: Callable[..., T], *args: Any) -> T:
        return await greenlet_spawn(self._outside_transaction, operation, args)

    def _outside_transaction(self, operation: Callable[..., T], args: tuple[Any, ...]) -> T:
        """A read without BEGIN and COMMIT (two round trips of three for a
        one-statement read) where that sees what a transaction would: at
        READ COMMITTED every statement takes its own snapshot anyway
        (PostgreSQL, "Transaction Isolation", 13.2.1). Under a stricter
        default (``default_transaction_isolation``) reads keep theirs."""
        if self._reads is None:
            with self._sync.connect() as conn:
                dialect = conn.dialect  # its default level is known once connected
            autocommit = (
                dialect.name == "postgresql" and dialect.default_isolation_level == "READ COMMITTED"
            )
            self._reads = (
                self._sync.execution_options(isolation_level="AUTOCOMMIT")
                if autocommit
                else self._sync
            )
        if self._reads is self._sync:
            return self._in_transaction(operation, args)
        with self._reads.connect() as conn:
            return operation(CursorSql(conn, self._compiled), *args)

    async def patiently(self, operation: Callable[..., T], *args: Any) -> T:
        return await self(operation, *args)

    def soon(self, operation: Callable[..., Any], *args: Any) -> None:
        task = asyncio.get_running_loop().create_task(self(operation, *args))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def now(self, operation: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        return False, None  # every statement here goes through the engine's awaited calls

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
