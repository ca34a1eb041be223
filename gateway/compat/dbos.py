"""DBOS Transact's private names the flow engine needs (dbos 3.x).

Each function says what DBOS lacks publicly; tests/gateway/compat/test_dbos.py
fails if an upgrade moves a name."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dbos import DBOS

if TYPE_CHECKING:
    # A step a sequence reserved in its workflow (`gateway.flows.lanes`):
    # DBOS types it in a private module.
    from dbos._dbos import StepReservation as StepReservation

# DBOS names its listener thread after its target (Python 3.10+ adds the
# target's name to a thread's default name).
_LISTENER = "(run_notification_listener)"


def adopt_running_loop(dbos: DBOS) -> None:
    """Make DBOS run its coroutines on the event loop running now (the
    gateway's), not on a loop of its own: `DBOS.launch` keeps the loop it was
    given first. DBOS has no public setting for it."""
    dbos._background_event_loop.set_main_loop()


def leave_listener_unjoined(dbos: DBOS) -> threading.Thread | None:
    """Take DBOS's SQLite notification listener out of the threads
    `DBOS.destroy` joins; the thread, if any.

    On SQLite the listener sleeps a whole poll interval between looks
    (`time.sleep`, not interruptible), and the gateway polls once a minute
    when one process runs flows (`gateway.flows.mailbox`). `DBOS.destroy`
    joins it with a 10 s timeout: every gateway that had run a flow took
    10 s to stop, and logged that the thread did not exit. The listener is a
    daemon thread that ends at its next wake-up (DBOS.destroy clears the flag
    its loop reads), so not waiting for it loses nothing."""
    threads: list[threading.Thread] = dbos._background_threads
    listener = next((t for t in threads if t.name.endswith(_LISTENER)), None)
    if listener is not None:
        threads.remove(listener)
    return listener


def waiter_signal(destination: str, topic: str) -> tuple[Any, Any]:
    """DBOS's system database and the signal of the run ``destination``
    waiting in `DBOS.recv` on ``topic`` in this process (None if it does not
    wait here). DBOS keeps its waiter registry private; `gateway.flows.mailbox`
    sets the signal to wake the waiter at once instead of at the next poll."""
    from dbos._dbos import _get_dbos_instance

    system = _get_dbos_instance()._sys_db
    key, _components = system._waiter(destination, topic)
    return system, system.notifications_map.get(key)


def recover_pending_workflows(executor_ids: list[str]) -> list[Any]:
    """DBOS's own recovery of the runs that ``executor_ids`` (replicas that
    are gone) left PENDING: the handles of the runs put back on its queue.

    Conductor drives it; the classmethod is underscored in 3.x. The public
    `resume_workflow` is not guarded by the executor: two replicas resuming
    at once could run a run twice, where this puts each run back while it is
    still PENDING under a gone executor, to be dequeued by exactly one."""
    handles: list[Any] = DBOS._recover_pending_workflows(executor_ids)
    return handles
