"""The local services the tests share (PostgreSQL and Redis on 127.0.0.1),
split so that pytest-xdist's workers never meet in them: PostgreSQL by a
fresh database per test or module (`tests/conftest.py`), Redis by database
number (this module). ``SWITCHBOARD_TEST_REDIS`` (``redis://host:port``)
points them at another Redis server, e.g. one per checkout when several test
runs share a machine."""

from __future__ import annotations

import os

# Each test process gets four of Redis's sixteen databases, from the top: the
# first (or only) process 12-15, worker gw1 8-11, gw2 4-7, gw3 0-3. A run of
# one to three processes leaves 0-3 to whoever uses the machine's Redis by hand.
_PER_PROCESS = 4
_MAX_WORKERS = 4


def local_redis(slot: int) -> str:
    """The URL of this test process's Redis database ``slot`` (0-3)."""
    if not 0 <= slot < _PER_PROCESS:
        raise ValueError(f"slot {slot} is not in 0..{_PER_PROCESS - 1}")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    if index >= _MAX_WORKERS:
        raise RuntimeError(f"at most {_MAX_WORKERS} pytest-xdist workers share the local Redis")
    server = os.environ.get("SWITCHBOARD_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")
    return f"{server}/{15 - index * _PER_PROCESS - slot}"
