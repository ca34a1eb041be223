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

So the gated connections and the statement runners' connections move the
automatic checkpoint out of reach of the usual load (`PRAGMA
wal_autocheckpoint=BACKSTOP_PAGES`, a setting of the connection) and
`watch` their file here instead. A daemon thread looks at each watched file
every `INTERVAL_SECONDS`; when its WAL changed since the last look it runs
a PASSIVE checkpoint on a connection of its own, which takes no gate and no
write lock: writers go on appending meanwhile
(https://sqlite.org/wal.html#ckpt, "checkpointing does not block writers").
Nothing is lost by a checkpoint running late: the WAL is part of the
database, read by every connection and replayed after a crash.

SQLite starts the WAL over only when a writer begins after a checkpoint
that copied all of it (https://sqlite.org/wal.html#avoiding_excessively_large_wal_files).
Under steady writes a checkpoint that takes no lock never does: what it
copies was all there when it began, and by its end more was appended. So
once the WAL holds `START_OVER_FRAMES` (about 4 MB, SQLite's own default
checkpoint size), a pass that copied what it saw checkpoints once more
holding the file's gate (`gateway.storage.sqlite_gate`): only the frames
appended during the first are left to copy, the gate's writers wait that
long (plus the disk's two syncs), and the next writer starts the WAL over
unless a reader still reads old frames. PASSIVE, not RESTART: a RESTART
pass there, which also needs every reader out of the WAL, let it grow
further in `bench.tool_catalog` (the figures: CHANGELOG). It is best
effort: a reader mid-transaction, a gate not had within
`GATE_WAIT_SECONDS` or another process's checkpoint under way leaves it
to the next pass, and the backstop stays: past `BACKSTOP_PAGES` (about 40 MB) the committing
writer checkpoints as SQLite always did, holding the gate, so that one
completes -- copying up to 40 MB while every writer waits.
`journal_size_limit` truncates a WAL started over back to `WAL_KEPT_BYTES`.

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
import weakref
from typing import Protocol

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0
BACKSTOP_PAGES = 10_000  # SQLite's own default is 1,000
WAL_KEPT_BYTES = 8 * 1024 * 1024  # journal_size_limit: a WAL started over is cut back to this
START_OVER_FRAMES = 1_000  # a WAL this long is finished under the gate (`Checkpoints.run_once`)
GATE_WAIT_SECONDS = 0.25  # how long a pass waits for the gate (every file's pass waits with it)


class Gate(Protocol):
    """The file's writers' lock (`gateway.storage.sqlite_gate.FileGate`, which
    imports this module: named here by what it does, not imported)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...


class Checkpoints:
    """The files to checkpoint, and the thread that does (started with the
    first `watch`)."""

    def __init__(
        self,
        interval_seconds: float = INTERVAL_SECONDS,
        *,
        thread: bool = True,
        start_over_frames: int = START_OVER_FRAMES,
    ) -> None:
        self._interval = interval_seconds
        self._start_over_frames = start_over_frames
        self._threaded = thread  # off: passes run only when `run_once` is called
        self._lock = threading.Lock()
        # realpath -> the WAL's (mtime, size) as seen before the last
        # checkpoint that copied all of it (None: none yet)
        self._files: dict[str, tuple[int, int] | None] = {}
        # realpath -> its writers' gate, if told; not kept alive from here (a
        # gate nobody writes through any more closes its side file).
        self._gates: dict[str, weakref.ref[Gate]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, path: str, gate: Gate | None = None) -> None:
        """Checkpoint the file at ``path`` from now on; ``gate``: the lock its
        writers take, held to finish a long WAL."""
        key = os.path.realpath(path)
        with self._lock:
            self._files.setdefault(key, None)
            if gate is not None:
                self._gates[key] = weakref.ref(gate)
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
                    self._gates.pop(path, None)
                continue
            seen = _wal_state(path)
            with self._lock:
                last = self._files.get(path)
                held = self._gates.get(path)
            gate = held() if held is not None else None  # None: no writer is left
            if seen is None or seen == last:
                continue  # no WAL, or nothing written since the last look
            complete, frames = _checkpoint(path)
            if complete and frames >= self._start_over_frames and gate is not None:
                complete = _checkpoint_gated(path, gate)
            if complete:
                done += 1
                with self._lock:
                    if path in self._files:
                        # As seen before the checkpoint: what was written
                        # during it is looked at again next time.
                        self._files[path] = seen
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


def _checkpoint(path: str) -> tuple[bool, int]:
    """A PASSIVE checkpoint of ``path`` (https://sqlite.org/pragma.html#pragma_wal_checkpoint):
    whether it copied the whole WAL as it was when it began (False: the file
    could not be opened, another checkpoint was under way, or a reader kept
    some of it for later), and how many frames the WAL held."""
    uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=0, check_same_thread=False)
    except sqlite3.Error:
        return False, 0
    try:
        # While the app's connections are open this one is not the file's
        # last, so its close does nothing more (after they closed, it
        # checkpoints and removes the WAL, as SQLite's last close does).
        busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return not busy and copied == frames, frames
    except sqlite3.Error as error:
        logger.debug("SQLite checkpoint of %s: %s", path, error)
        return False, 0
    finally:
        with contextlib.suppress(sqlite3.Error):
            connection.close()


def _checkpoint_gated(path: str, gate: Gate) -> bool:
    """`_checkpoint` again with no writer of the gate appending meanwhile,
    so that it copies the whole WAL and the next writer starts it over;
    False if the gate was not had within `GATE_WAIT_SECONDS`."""
    if not gate.acquire(timeout=GATE_WAIT_SECONDS):
        return False
    try:
        return _checkpoint(path)[0]
    finally:
        gate.release()


CHECKPOINTS = Checkpoints()


def checkpointed_here(connection: sqlite3.Connection, path: str, gate: Gate | None) -> None:
    """``connection`` (to the file at ``path``, whose writers take ``gate``;
    None: none does, and a long WAL is left to the backstop) leaves its
    checkpoints to this module's thread."""
    connection.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    connection.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
    CHECKPOINTS.watch(path, gate)
