"""The WAL of each SQLite file this process writes, checkpointed by one
background thread rather than by whichever writer commits.

In WAL mode a commit appends to the `-wal` file; a checkpoint copies those
pages back into the database file and waits for the disk twice (an fsync of
each, `synchronous=NORMAL` included). SQLite by default runs it inside the
COMMIT that takes the WAL past 1,000 pages, in the committing connection --
here while that writer holds its file's gate (`gateway.storage.sqlite_gate`),
so every other writer of the process, and every request waiting on one,
waits for the disk: a stall of all eight callers at once, 360-430 ms, once
or twice a minute in `bench.tool_catalog` on a slow disk.

So the gated connections and the statement runners' connections turn the
automatic checkpoint off (`PRAGMA wal_autocheckpoint=0`, a setting of the
connection) and `watch` their file here instead. A daemon thread looks at
each watched file every `INTERVAL_SECONDS`; when its WAL changed since the
last look it runs a PASSIVE checkpoint on a connection of its own, which
takes no gate and no write lock: writers go on appending meanwhile
(https://sqlite.org/wal.html#ckpt, "checkpointing does not block writers").
Nothing is lost by a checkpoint running late: the WAL is part of the
database, read by every connection and replayed after a crash; it only
grows until the next one.

A file that is gone is dropped, never created again (the checkpoint's
connection opens it ``mode=rw``). A process that stops mid-interval leaves
its last pages in the WAL for the next process to checkpoint (or for
SQLite, when the last connection closes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import urllib.parse

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0


class Checkpoints:
    """The files to checkpoint, and the thread that does (started with the
    first `watch`)."""

    def __init__(self, interval_seconds: float = INTERVAL_SECONDS, *, thread: bool = True) -> None:
        self._interval = interval_seconds
        self._threaded = thread  # off: passes run only when `run_once` is called
        self._lock = threading.Lock()
        # realpath -> the WAL's (mtime, size) at the last checkpoint
        self._files: dict[str, tuple[int, int] | None] = {}
        self._thread: threading.Thread | None = None

    def watch(self, path: str) -> None:
        key = os.path.realpath(path)
        with self._lock:
            self._files.setdefault(key, None)
            if self._threaded and self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpoints", daemon=True
                )
                self._thread.start()

    def watching(self) -> list[str]:
        with self._lock:
            return list(self._files)

    def run_once(self) -> int:
        """One look at every watched file: how many were checkpointed."""
        done = 0
        for path in self.watching():
            if not os.path.exists(path):
                with self._lock:
                    self._files.pop(path, None)
                continue
            seen = _wal_state(path)
            with self._lock:
                last = self._files.get(path)
            if seen is None or seen == last:
                continue  # no WAL, or nothing written since the last look
            if _checkpoint(path):
                done += 1
                with self._lock:
                    if path in self._files:
                        self._files[path] = _wal_state(path)
        return done

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            try:
                self.run_once()
            except Exception:  # the next look tries again; a dead thread would let WALs grow
                logger.exception("SQLite checkpoints: a pass failed")


def _wal_state(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path + "-wal")
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _checkpoint(path: str) -> bool:
    """A PASSIVE checkpoint of ``path``: False when the file could not be
    opened or was busy (a checkpoint of another process under way)."""
    uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=0, check_same_thread=False)
    except sqlite3.Error:
        return False
    try:
        # Never checkpointed by its own close either: the app's connections
        # are open, so this one is not the file's last.
        busy, _frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return not busy
    except sqlite3.Error as error:
        logger.debug("SQLite checkpoint of %s: %s", path, error)
        return False
    finally:
        with contextlib.suppress(sqlite3.Error):
            connection.close()


CHECKPOINTS = Checkpoints()


def checkpointed_here(connection: sqlite3.Connection, path: str) -> None:
    """``connection`` (to the file at ``path``) leaves its checkpoints to
    this module's thread."""
    connection.execute("PRAGMA wal_autocheckpoint=0")
    CHECKPOINTS.watch(path)
