"""One writer at a time per SQLite file in this process, waited for on a lock.

SQLite lets one connection write at a time; a connection that finds the
write lock taken waits in SQLite's busy handler, which *sleeps* -- 1, 2, 5,
10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms between tries -- however soon
the lock is let go. Under load (a gateway running hundreds of flow runs: DBOS
Transact's executor threads, the app's aiosqlite connections and the stores'
statement runners, all writing to one file) writers mostly sleep while the
lock is free, and the gateway's CPU sits idle while work waits
(`bench.flow_load`; docs/history/performance-to-2026-11-27.md, "One writer
at a time, on a lock").

Writers in this process therefore take a gate first: a lock per file, let go
the moment their transaction ends, so the next writer starts at once. SQLite's
own lock still decides between processes (workers, the CLI), where its busy
handler does the waiting as before.

* `GatedConnection` is a `sqlite3.Connection` (``factory=``) that takes the
  gate before the statement that makes the driver begin a write transaction
  (INSERT, UPDATE, DELETE or REPLACE outside a transaction, or an explicit
  BEGIN) and lets it go when that transaction commits, rolls back or the
  connection closes. DBOS's engine and the app's aiosqlite engine open their
  connections with it; both run statements in threads of their own, where
  waiting is allowed.
* The statement runners (`gateway.storage.statements`) take it themselves:
  on the event loop only if it is free (the loop never waits on it), in
  their worker thread by waiting.

The gate is waited for as long as the connection's busy timeout, and a
writer that does not get it fails as SQLite would ("database is locked").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from gateway.storage.sqlite_checkpoints import checkpointed_here

_GATES: dict[str, threading.Lock] = {}
_GATES_LOCK = threading.Lock()
# What sqlite3 (CPython 3.11+, legacy transaction control) begins a
# transaction before: the statement's first keyword, after white space.
_DML = ("insert", "update", "delete", "replace")
_WHITE = " \t\r\n"


def gate_for(path: str) -> threading.Lock:
    """The gate of the file at ``path`` (one per file however it is spelled)."""
    key = os.path.realpath(path)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = threading.Lock()
        return gate


def begins_write(sql: str) -> bool:
    """As sqlite3 decides to begin a transaction before ``sql``: its first
    keyword past white space and comments (CPython 3.11+ skips both)."""
    rest = sql
    while True:
        rest = rest.lstrip(_WHITE)
        if rest.startswith("--"):
            _, newline, rest = rest.partition("\n")
            if not newline:
                return False
        elif rest.startswith("/*"):
            _, closed, rest = rest.partition("*/")
            if not closed:
                return False
        else:
            break
    head = rest[:7].lower()
    return head.startswith(_DML) or head.startswith("begin")


def _database_path(database: Any) -> str | None:
    path = os.fspath(database) if isinstance(database, str | os.PathLike) else None
    if not isinstance(path, str) or path in ("", ":memory:") or path.startswith("file:"):
        return None  # private or URI databases: nothing shared to gate
    return path


class GatedConnection(sqlite3.Connection):
    """A connection that takes its file's gate for each write transaction."""

    # Here too, not only in __init__: a connection that failed to open is
    # still closed and collected (`_let_go`).
    _holding = False

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        path = _database_path(database)
        self._gate = gate_for(path) if path is not None else None
        self._holding = False
        # How long the gate is waited for: as long as the connection's busy
        # handler waits (read at the first write: DBOS sets it by PRAGMA once
        # connected, not through sqlite3.connect's ``timeout``).
        self._wait_seconds: float | None = None
        if path is not None:
            # As the statement runners' connections commit (see the durability
            # note in `gateway.storage.statements`): without waiting for the
            # disk, in WAL mode. A crash of the process loses nothing.
            super().execute("PRAGMA synchronous=NORMAL")
            # Its WAL checkpointed by a thread that holds no gate, not in the
            # COMMIT of whichever writer crosses 1,000 pages (only past a
            # backstop: `gateway.storage.sqlite_checkpoints`).
            checkpointed_here(self, path)

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or GatedCursor)

    # The connection's shortcuts make their cursor in C, past `cursor()`.
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cursor: sqlite3.Cursor = self.cursor()
        return cursor.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        cursor: sqlite3.Cursor = self.cursor()
        return cursor.executemany(sql, parameters)

    def take_gate_for(self, sql: str) -> bool:
        """Take the gate before ``sql`` when it begins a write transaction;
        True when this call took it."""
        if self._gate is None or self._holding or self.in_transaction or not begins_write(sql):
            return False
        if self._wait_seconds is None:
            row = sqlite3.Connection.execute(self, "PRAGMA busy_timeout").fetchone()
            self._wait_seconds = max(float(row[0]) / 1000 if row else 5.0, 0.0)
        if not self._gate.acquire(timeout=self._wait_seconds):
            raise sqlite3.OperationalError("database is locked")
        self._holding = True
        return True

    def let_go_unless_writing(self) -> None:
        if self._holding and not self.in_transaction:
            self._holding = False
            assert self._gate is not None
            self._gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.let_go_unless_writing()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.let_go_unless_writing()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()

    def __del__(self) -> None:
        # A connection dropped without close() must not keep the gate.
        self._let_go()

    def _let_go(self) -> None:
        if self._holding:
            self._holding = False
            assert self._gate is not None
            self._gate.release()


class GatedCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> GatedCursor:
        with _gated(self, sql):
            super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> GatedCursor:
        with _gated(self, sql):
            super().executemany(sql, seq_of_parameters)
        return self


@contextlib.contextmanager
def _gated(cursor: sqlite3.Cursor, sql: str) -> Iterator[None]:
    connection = cursor.connection
    assert isinstance(connection, GatedConnection)
    connection.take_gate_for(sql)
    try:
        yield
    finally:
        # A statement that failed before its transaction began, or an
        # explicit COMMIT / ROLLBACK run as a statement, ends the hold.
        connection.let_go_unless_writing()
