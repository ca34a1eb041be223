"""One writer at a time per SQLite file, waited for on a lock.

SQLite lets one connection write at a time; a connection that finds the
write lock taken waits in SQLite's busy handler, which *sleeps* -- 1, 2, 5,
10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms between tries -- however soon
the lock is let go. Under load (a gateway running hundreds of flow runs: DBOS
Transact's executor threads, the app's aiosqlite connections and the stores'
statement runners, all writing to one file) writers mostly sleep while the
lock is free, and the gateway's CPU sits idle while work waits
(`bench.flow_load`; docs/history/performance-to-2026-11-27.md, "One writer
at a time, on a lock").

Writers therefore take a gate first, let go the moment their transaction
ends (`FileGate`): a lock per file for this process's threads, then an
exclusive flock(2) on a file beside the database for the processes (`serve
--workers`, the CLI), which a waiter in another process tries again within
a millisecond -- not in order of arrival. Two processes writing one file:
`bench.sqlite_writers` (docs/performance.md). A writer that opens the file
some other way (the sqlite3 shell) takes no gate: SQLite's own lock and busy
handler still decide against it. The backstop checkpoint
(`sqlite_checkpoints`) runs in a COMMIT, the gate held: every process's
writers wait for it.

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
import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from gateway.storage.sqlite_checkpoints import checkpointed_here

log = logging.getLogger(__name__)

# Held by the connections and runners that use a gate: a gate nobody uses
# any more (a deleted test database) closes its side file.
_GATES: weakref.WeakValueDictionary[str, FileGate] = weakref.WeakValueDictionary()
_GATES_LOCK = threading.Lock()
# The side file cannot be had for good: this process's threads only then.
_FOR_GOOD = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR}
# How a writer waits for another process's hold: tried again after 50 µs,
# then twice as long each time up to 1 ms (SQLite's handler starts at 1 ms
# and grows to 100). A write transaction here holds the lock ~0.1-0.5 ms.
_FIRST_PAUSE = 0.00005
_LONGEST_PAUSE = 0.001
# What sqlite3 (CPython 3.11+, legacy transaction control) begins a
# transaction before: the statement's first keyword, after white space.
_DML = ("insert", "update", "delete", "replace")
_WHITE = " \t\r\n"


class FileGate:
    """One writer at a time for one database file: this process's threads
    queue on a lock, then the holder takes an exclusive flock(2) on
    ``<file>-gate`` against other processes. Taken and let go like a
    `threading.Lock` (``acquire(blocking, timeout)``, ``release()``, from any
    thread of the process). The kernel lets a dead process's flock go.

    flock(2) has no timeout, so a wait for another process is a try every
    `_FIRST_PAUSE`..`_LONGEST_PAUSE` seconds until the deadline. The side
    file is made with the database's permission bits (as SQLite makes its
    ``-wal`` and ``-shm``) and opened read-only where it cannot be written (a
    flock needs no write access). Where it cannot be opened at all (a
    read-only directory), the gate is this process's threads' only, as
    before it spanned processes."""

    def __init__(self, path: str) -> None:
        self._threads = threading.Lock()
        self._database = path
        self._side = path + "-gate"
        self._fd: int | None = None
        self._unshared = False

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def forked(self) -> None:
        """In a forked child: no hold of the parent's. Its thread lock may
        have been copied held, and its open file shares the parent's flock."""
        self._threads = threading.Lock()
        if self._fd is not None:
            os.close(self._fd)  # the parent's flock lasts while it has the file open
            self._fd = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        deadline = time.monotonic() + timeout if blocking and timeout >= 0 else None
        if not self._threads.acquire(blocking, timeout):
            return False
        try:
            if self._take_file(blocking, deadline):
                return True
        except BaseException:  # an interrupt may land after the flock was taken
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._threads.release()
            raise
        self._threads.release()
        return False

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _take_file(self, blocking: bool, deadline: float | None) -> bool:
        fd = self._file()
        if fd is None:
            return True
        pause = _FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            if not blocking:
                return False
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                pause = min(pause, left)
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)

    def _file(self) -> int | None:
        if self._unshared:
            return None
        if self._fd is None:
            try:
                self._fd = self._open()
            except OSError as error:
                # For good (no access), or for now (out of file descriptors:
                # tried again at the next write). Either way SQLite's own lock
                # still keeps the processes' writes apart.
                self._unshared = error.errno in _FOR_GOOD
                log.warning(
                    "%s: cannot open (%s); writers in other processes wait in"
                    " SQLite's busy handler%s",
                    self._side,
                    error.strerror,
                    "" if self._unshared else " this time",
                )
                return None
        return self._fd

    def _open(self) -> int:
        try:
            mode = os.stat(self._database).st_mode & 0o666
        except OSError:
            mode = 0o600
        try:
            return os.open(self._side, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        except PermissionError:  # made by another user: locked through a read-only open
            return os.open(self._side, os.O_RDONLY | os.O_CLOEXEC)


def _forked() -> None:
    global _GATES_LOCK
    _GATES_LOCK = threading.Lock()  # another thread may have held it at the fork
    for gate in list(_GATES.values()):
        gate.forked()


os.register_at_fork(after_in_child=_forked)


def gate_for(path: str) -> FileGate:
    """The gate of the file at ``path`` (one per file however it is spelled)."""
    key = os.path.realpath(path)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = FileGate(key)
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
        self._gate: FileGate | None = None
        self._holding = False
        # How long the gate is waited for: as long as the connection's busy
        # handler waits (read at the first write: DBOS sets it by PRAGMA once
        # connected, not through sqlite3.connect's ``timeout``).
        self._wait_seconds: float | None = None
        if path is not None:
            self._gate = gate = gate_for(path)
            # As the statement runners' connections commit (see the durability
            # note in `gateway.storage.statements`): without waiting for the
            # disk, in WAL mode. A crash of the process loses nothing.
            super().execute("PRAGMA synchronous=NORMAL")
            # Its WAL checkpointed by a thread (which holds the gate only to
            # finish a long WAL), not in the COMMIT of whichever writer
            # crosses 1,000 pages (only past a backstop:
            # `gateway.storage.sqlite_checkpoints`).
            checkpointed_here(self, path, gate)

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
