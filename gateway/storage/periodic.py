"""The gateway's periodic jobs: one loop for all of them.

Retention, sweeps, health checks, reconciliation, the replica's heartbeat,
the takeover's look, the policy reloader and the metrics' database gauges each run one pass every
few seconds in every replica. What a failing pass does must not be each
job's own decision -- a job that logs every pass floods the log during an
outage, one that logs nothing hides it, and one that lets an unexpected
error out of its loop is gone for good. `Periodic` is the one loop:

* a pass that raises never ends the job: the next pass runs on time;
* a failing stretch is logged once when it starts -- as the outage it is
  when the database or Redis is away (`gateway.storage.outages`), with its
  traceback when it is a bug -- and once when the job recovers, not once
  per pass (a database down for an hour is two lines per job, not 720);
* ``fixed_rate`` keeps a pass that ran long from pushing the next one back
  (the gateway-run tasks' takeover look: the takeover bound depends on it);
* ``wake()`` runs the next pass now (a change was made that it should see);
* each job's runs, failures and last good pass are kept (`JobState`) for
  `/metrics` (`switchboard_job_*`).

Why not DBOS scheduled workflows (the flows' engine): these jobs are per
replica (each renews its own row and refreshes its own gauges), cheap and
idempotent, so a durable record of each pass buys nothing; and the engine
starts only once a flow exists, so that a gateway without flows does not pay
its polling (an idle engine's CPU: docs/performance.md, "Engine floor").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.storage.outages import outage_of

logger = logging.getLogger(__name__)

Interval = float | Callable[[], float]


@dataclass
class JobState:
    """What a job has done in this process."""

    runs: int = 0
    failures: int = 0
    last_ok: float | None = None  # wall-clock time of the last pass that ended well
    failing: str | None = None  # what the current failing stretch is, if one is on
    # Its kind: "outage:<dependency>" or "bug:<exception type>". A stretch that
    # changes kind (the database back, then a bug) is said again.
    failing_kind: str | None = None


@dataclass
class Periodic:
    """``job`` every ``every`` seconds (a number, or read before each wait:
    a setting that can change). ``now``: the first pass at once rather than
    after one interval. See the module's docstring."""

    name: str
    every: Interval
    job: Callable[[], Awaitable[object]]
    now: bool = True
    fixed_rate: bool = False
    state: JobState = field(default_factory=JobState)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def interval(self) -> float:
        return self.every() if callable(self.every) else self.every

    def wake(self) -> None:
        """Run the next pass now instead of at its time."""
        self._wake.set()

    async def run_once(self) -> bool:
        """One pass; whether it ended well (a failure is logged and kept, never raised)."""
        self.state.runs += 1
        try:
            await self.job()
        except Exception as exc:
            self.state.failures += 1
            self._failed(exc)
            return False
        self.state.last_ok = time.time()
        if self.state.failing is not None:
            logger.warning("%s: running again (was failing: %s)", self.name, self.state.failing)
            self.state.failing = self.state.failing_kind = None
        return True

    def _failed(self, exc: Exception) -> None:
        outage = outage_of(exc)
        kind = f"outage:{outage.dependency}" if outage else f"bug:{type(exc).__name__}"
        if kind == self.state.failing_kind:
            logger.debug("%s: still failing: %s", self.name, exc)
            return
        self.state.failing_kind = kind
        if outage is not None:
            self.state.failing = str(outage)
            logger.error("%s: paused while %s", self.name, outage)
        else:
            self.state.failing = f"{type(exc).__name__}: {exc}"[:300]
            logger.exception("%s failed", self.name)

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + (0.0 if self.now else self.interval())
        while True:
            if await self._until(due - loop.time()):
                due = loop.time()  # woken: this pass counts as the one due now
            await self.run_once()
            due = next_due(due, loop.time(), self.interval(), fixed_rate=self.fixed_rate)

    async def _until(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if woken; whether woken. Always yields to
        the event loop, even when due already: a job with no wait between
        passes (an interval of 0, a fixed-rate job running behind) must not
        starve it."""
        woken = False
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    woken = await self._wake.wait()
        else:
            await asyncio.sleep(0)
        self._wake.clear()
        return woken


# How often a job looks for what only another replica changes, or for work
# only another replica leaves, while this one is alone (`paced_by_company`).
# A replica that starts, or one whose row goes, is seen at this one's next
# heartbeat, which wakes the job: this look is for a writer that is no replica.
ALONE_SECONDS = 60.0


@dataclass
class Pace:
    """How long a look for work kept in the database waits: ``busy`` seconds
    while this process knows of some -- its last look found some
    (`looked`), or it kept some itself in the last ``lately`` seconds
    (`kept`, which also wakes the look: the work may not be committed yet,
    so one look right away may miss it) -- else ``idle``.

    Work kept by another replica is that replica's to look at quickly (the
    state that lets it go is shared); this one finds it at its idle pace, for
    when that replica is gone. So a gateway with nothing to do reads the
    table once every ``idle`` seconds, not every ``busy``; and while no
    other replica runs (`alone`, `ReplicaDirectory.alone`) once every
    `ALONE_SECONDS`, woken when one is seen to start or go."""

    busy: float
    idle: float
    lately: float = 10.0
    found: bool = True  # until the first look says otherwise
    kept_at: float = float("-inf")
    wake: Callable[[], None] | None = None
    alone: Callable[[], bool] | None = None

    def seconds(self) -> float:
        if self.found or time.monotonic() - self.kept_at < self.lately:
            return self.busy
        if self.alone is not None and self.alone():
            return max(self.idle, ALONE_SECONDS)
        return self.idle

    def alone_when(self, alone: Callable[[], bool], told: list[Callable[[], None]]) -> None:
        """Look once every `ALONE_SECONDS` while ``alone()``, and at once when
        ``told`` is (`ReplicaDirectory.on_others`): a replica gone may have
        left work."""
        self.alone = alone
        told.append(lambda: self.wake() if self.wake is not None else None)

    def kept(self) -> None:
        self.kept_at = time.monotonic()
        if self.wake is not None:
            self.wake()

    def looked(self, found: bool) -> None:
        self.found = found

    def periodic(self, name: str, job: Callable[[], Awaitable[object]]) -> Periodic:
        """The job that looks, at this pace, woken when work is kept here."""
        look = Periodic(name, self.seconds, job)
        self.wake = look.wake
        return look


def paced_by_company(
    job: Periodic,
    quiet: Callable[[], bool],
    told: list[Callable[[], None]],
    idle: float = ALONE_SECONDS,
) -> Periodic:
    """``job`` at its own interval while ``quiet()`` is false (another replica
    runs: `ReplicaDirectory.alone`), every ``idle`` seconds while it is true
    (its interval if longer), and woken when ``told`` is (the replicas seen
    moved: `ReplicaDirectory.on_others`)."""
    every = job.every

    def interval() -> float:
        own = every() if callable(every) else every
        return max(own, idle) if quiet() else own

    job.every = interval
    told.append(job.wake)
    return job


def next_due(due: float, ended: float, interval: float, *, fixed_rate: bool) -> float:
    """When the pass after one that was due at ``due`` and ended at ``ended``
    is due. Fixed rate: one interval after the last was due -- a slow pass
    does not push the next back (the gateway-run tasks' takeover look: the
    takeover bound counts on it) -- unless it ran past that, then at once.
    Otherwise one interval after the pass ended."""
    if fixed_rate:
        return max(due + interval, ended)
    return ended + interval
