"""Messages to waiting runs (`DBOS.send`), and the wake-up of a waiter in
this process at once.

A run that waits for a word -- a checkpoint's decision, an answer, an
event, a connection, a task's end -- waits in `DBOS.recv`. On PostgreSQL,
DBOS wakes it by LISTEN/NOTIFY. On SQLite it has no notification: its
listener thread polls, with one query per waiting run every interval, so
the cost grows with the runs that wait -- at DBOS's interval of a quarter
of a second, a few hundred waiting runs keep a large share of a core busy
doing nothing else (`bench.flow_load`, "CPU while all wait"; before/after in
docs/history/performance-to-2026-11-27.md, "Runs that wait cost nothing to
speak of").

So every message a run is sent here also wakes its waiter in this process
at once, and the poll is left to wake a run in another process on the same
file (`serve --workers`: `flow_wake_poll_seconds`, 2 s by default). With one
process on SQLite (the embedded default) every sender is here, and the poll
is only a net, once a minute (`LONE_PROCESS_POLL_SECONDS`): a waiter that
registers after its message was sent finds it as it registers (DBOS looks
for one already there), and a waiting run looks for itself now and then
anyway (`gateway.flows.looks`).

The wake-up reads DBOS's waiter registry, which DBOS keeps on its private
system database (`dbos` 3.x, through `gateway.compat.dbos`). If that ever changes, the wake-up does
nothing and the poll still wakes every run; `tests/gateway/flows/test_mailbox.py`
fails first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dbos import DBOS

from gateway.compat.dbos import launched, waiter_signal

logger = logging.getLogger(__name__)

# The SQLite listener's poll when one process runs flows on the file.
LONE_PROCESS_POLL_SECONDS = 60.0


async def send(
    destination: str, message: Any, topic: str, *, idempotency_key: str | None = None
) -> None:
    """Send ``message`` to run ``destination`` on ``topic`` (durably, once per
    ``idempotency_key``), and wake it now if it waits in this process."""
    await DBOS.send_async(destination, message, topic, idempotency_key=idempotency_key)
    await wake_here(destination, topic)


async def wake_here(destination: str, topic: str) -> bool:
    """Wake run ``destination`` if it waits on ``topic`` in this process and
    a message is there for it; whether a waiter was found. The message is
    looked for, not assumed: a send DBOS dropped as a repeat of an earlier
    one (its ``idempotency_key``) stores nothing, and a waiter woken for
    nothing would take its wait as over."""
    dbos = launched()
    if dbos is None:
        return False
    try:
        system, signal = waiter_signal(dbos, destination, topic)
    except Exception as exc:  # DBOS not launched, or its internals moved
        logger.debug("no wake-up here for run %s: %r", destination, exc)
        return False
    if signal is None:
        return False
    # DBOS's own fallback look: sets the waiter's signal if an unconsumed
    # message for it is stored (it takes any object with `set`).
    await asyncio.to_thread(
        system.recv_check,
        destination,
        topic,
        signal,
    )
    return True
