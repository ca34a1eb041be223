"""A port for a gateway that runs in a process of its own and is killed and
started again on it (the crash demos and tests, the benches).

A port taken with bind(0) and closed for the child to bind is free again
until the child binds it, and free again between a SIGKILL and the restart.
Meanwhile the kernel may hand it out: to another bind(0) (another test's
gateway, which then answers this one's health check), or as the source port
of an outgoing connection (the restart's bind then fails with EADDRINUSE).
Two rules close both gaps:

- the port is below the kernel's ephemeral range
  (/proc/sys/net/ipv4/ip_local_port_range), which neither bind(0) nor
  connect() hand out;
- it is held, for as long as the reservation lives, by an exclusive lock on a
  file named after it, so no other reservation on this machine takes it
  (flock: released by the kernel when the holder dies, so a crashed test run
  leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import IO

from gateway.demo.servers import DemoError

# Where the choice starts: above the registered ports most services use, and
# far below a usual ephemeral range (32768-60999 on Linux).
_LOWEST = 20000
_LOCKS = Path(tempfile.gettempdir()) / "switchboard-ports"


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # the Linux default; elsewhere only the lock files guard


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


class PortReservation:
    """A port of 127.0.0.1 that is this object's until `release()` (or until
    the process that made it ends)."""

    def __init__(self, port: int | None = None) -> None:
        _LOCKS.mkdir(parents=True, exist_ok=True)
        if port is not None:  # asked for by name (`switchboard demo --port`)
            lock = self._lock(port)
            if lock is None or not _free(port):
                if lock is not None:
                    lock.close()
                raise DemoError(f"port {port} of 127.0.0.1 is in use: give another --port")
            self.port = port
            self._lock_file: IO[bytes] | None = lock
            return
        high = _ephemeral_low()
        if high - _LOWEST < 1000:
            raise DemoError(
                f"no room below the ephemeral ports ({high}) for a gateway's port; "
                "widen net.ipv4.ip_local_port_range's lower bound"
            )
        candidates = list(range(_LOWEST, high))
        # A random start: reservations of concurrent processes seldom try the
        # same ports, and a taken one is skipped at the lock, not waited for.
        start = random.randrange(len(candidates))  # noqa: S311 -- spreading, not secrecy
        for port in candidates[start:] + candidates[:start]:
            lock = self._lock(port)
            if lock is None:
                continue
            if _free(port):
                self.port = port
                self._lock_file = lock
                return
            lock.close()
        raise DemoError(f"no free port between {_LOWEST} and {high}")

    @staticmethod
    def _lock(port: int) -> IO[bytes] | None:
        handle = (_LOCKS / f"{port}.lock").open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        # Not inherited by the gateway started on the port: its life is this
        # reservation's, not the child's.
        os.set_inheritable(handle.fileno(), False)
        return handle

    def release(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()
            self._lock_file = None
