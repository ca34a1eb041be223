"""DBOS Transact's private names the flow engine needs (dbos 3.x).

Each function says what DBOS lacks publicly; tests/gateway/compat/test_dbos.py
fails if an upgrade moves a name."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dbos import DBOS

# DBOS names its listener thread after its target (Python 3.10+ adds the
# target's name to a thread's default name).
_LISTENER = "(run_notification_listener)"


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


_launched: DBOS | None = None


def launched_here(dbos: DBOS | None) -> None:
    """The DBOS instance this process's flow engine launched (one per
    process), or None once it is destroyed: what `launched` answers."""
    global _launched
    _launched = dbos


def launched() -> DBOS | None:
    """The DBOS instance launched in this process (`launched_here`), if any."""
    return _launched


def waiter_signal(dbos: DBOS, destination: str, topic: str) -> tuple[Any, Any]:
    """DBOS's system database and the signal of the run ``destination``
    waiting in `DBOS.recv` on ``topic`` in this process (None if it does not
    wait here). DBOS keeps its system database private; `gateway.flows.mailbox`
    sets the signal to wake the waiter at once instead of at the next poll.

    Found by what each waiter is registered with (workflow, topic, shard
    key: what DBOS's own listener reads), not by DBOS's private key format."""
    system = dbos._sys_db
    for _key, (workflow_id, name, _shard_key), signal in system.notifications_map.snapshot():
        if workflow_id == destination and name == topic:
            return system, signal
    return system, None


def recover_pending_workflows(executor_ids: list[str]) -> list[Any]:
    """DBOS's own recovery of the runs that ``executor_ids`` (replicas that
    are gone) left PENDING: the handles of the runs put back on its queue.

    Conductor drives it; the classmethod is underscored in 3.x. The public
    `resume_workflow` is not guarded by the executor: two replicas resuming
    at once could run a run twice, where this puts each run back while it is
    still PENDING under a gone executor, to be dequeued by exactly one."""
    handles: list[Any] = DBOS._recover_pending_workflows(executor_ids)
    return handles


@dataclass
class IdleGates:
    """DBOS's background reads, each made rare while it has nothing to find
    (`quiet_when_idle`): a read is made ``idle_seconds`` after the last, or
    at DBOS's own pace for `KICKED_SECONDS` after this process changed what
    it reads (`kick`); while ``alone()`` (no other replica runs:
    `ReplicaDirectory.alone`, so none puts work on the shared queue),
    every ``alone_seconds`` at most."""

    idle_seconds: float
    alone: Callable[[], bool] | None = None
    alone_seconds: float = 60.0  # the gateway's `gateway.storage.periodic.ALONE_SECONDS`
    _kicked: dict[str, float] = field(default_factory=dict)
    _looked: dict[str, float] = field(default_factory=dict)

    def kick(self, name: str) -> None:
        self._kicked[name] = time.monotonic()

    def due(self, name: str, at_least: float = 0.0) -> bool:
        """Whether ``name``'s read is made now; ``at_least`` seconds apart
        when idle, if longer than the gate's own pace."""
        now = time.monotonic()
        if now - self._kicked.get(name, float("-inf")) < KICKED_SECONDS:
            return True
        # A tenth early: a thread that polls at about this pace is not put off a whole turn.
        idle = max(self.idle_seconds, at_least)
        if self.alone is not None and self.alone():
            idle = max(idle, self.alone_seconds)
        if now - self._looked.get(name, float("-inf")) < 0.9 * idle:
            return False
        self._looked[name] = now
        return True


# After this process puts work on a DBOS queue (the internal one: the gateway
# declares none) -- a fork, a resume, a recovery, a schedule's tick -- or
# changes a schedule, DBOS reads it at its own pace this long (the change is
# committed before the kick).
KICKED_SECONDS = 10.0
QUEUE, SCHEDULES = "internal queue", "schedules"
_KICKS = {
    QUEUE: ("init_workflow", "resume_workflows", "fork_workflow", "reenqueue_for_recovery"),
    SCHEDULES: (
        "create_schedule",
        "upsert_schedule",
        "delete_schedule",
        "pause_schedule",
        "resume_schedule",
    ),
}


def quiet_when_idle(
    dbos: DBOS,
    idle_seconds: float,
    alone: Callable[[], bool] | None = None,
    alone_seconds: float = 60.0,
) -> IdleGates:
    """Make DBOS's polling threads read the database every ``idle_seconds``
    instead of every second when they have nothing to do. Called once DBOS
    is launched (its system database exists then); the threads look these
    methods up on the instance at each pass.

    DBOS 3.x polls, with no setting for it: the queue thread lists the
    database-backed queues every second (the gateway declares none); the
    scheduler lists the schedules every second for a minute after launch
    (then every 30 s; a change made here is read at once); the internal
    queue's worker looks for work every second (forks, resumes,
    recoveries and schedule ticks are put there -- each is done through the
    system database's methods wrapped here, which open the gate at once);
    the background jobs (delayed workflows, workflow timeouts: the gateway
    uses neither) run every second (`JOBS_SECONDS` here)."""
    gates = IdleGates(idle_seconds, alone, alone_seconds)
    system: Any = dbos._sys_db
    dequeue, job_lock = system.start_queued_workflows, system.background_job_lock

    def start_queued_workflows(queue: Any, *args: Any, **kwargs: Any) -> Any:
        # Every queue is gated: the gateway declares none of its own, so the
        # one its worker polls is DBOS's internal queue.
        if not gates.due(QUEUE):
            return [], None
        return dequeue(queue, *args, **kwargs)

    @contextlib.contextmanager
    def background_job_lock(job_name: str) -> Iterator[bool]:
        if not gates.due(f"job {job_name}", JOBS_SECONDS):
            yield False  # as if another process held it: DBOS waits a pass
            return
        with job_lock(job_name) as acquired:
            yield acquired

    system.list_queues = _remembered(system.list_queues, gates, "queues", "(queue_thread)")
    system.list_schedules = _remembered(
        system.list_schedules, gates, SCHEDULES, "(dynamic_scheduler_loop)"
    )
    system.start_queued_workflows = start_queued_workflows
    system.background_job_lock = background_job_lock
    for gate, names in _KICKS.items():
        for name in names:
            # A workflow started is put on the internal queue only when queued (a tick).
            when = _enqueued if name == "init_workflow" else _always
            setattr(system, name, _kicking(getattr(system, name), gates, gate, when))
    return gates


# How often DBOS's background jobs run (they enqueue delayed workflows and
# cancel timed-out ones: the gateway starts neither, so they find nothing).
JOBS_SECONDS = 300.0


def _kicking(
    method: Callable[..., Any], gates: IdleGates, gate: str, when: Callable[..., bool]
) -> Callable[..., Any]:
    @functools.wraps(method)
    def kicking(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        finally:
            if when(*args, **kwargs):
                gates.kick(gate)

    return kicking


def _always(*_args: Any, **_kwargs: Any) -> bool:
    return True


def _enqueued(status: Any, *_args: Any, **_kwargs: Any) -> bool:
    return status.get("queue_name") is not None


def _remembered(
    method: Callable[..., Any], gates: IdleGates, gate: str, thread: str
) -> Callable[..., Any]:
    """``method`` (a listing) as DBOS's polling ``thread`` (named after its
    target, as `_LISTENER`) calls it: read when its gate is due, else its last
    answer. Any other caller (the gateway's own listing) reads it."""
    last: list[Any] = []

    @functools.wraps(method)
    def remembered(*args: Any, **kwargs: Any) -> Any:
        polling = threading.current_thread().name.endswith(thread)
        if not polling or gates.due(gate) or not last:
            found = method(*args, **kwargs)
            if not polling:
                return found
            last[:] = [found]
        return last[0]

    return remembered
