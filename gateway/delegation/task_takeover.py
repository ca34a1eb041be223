"""Gateway-run tasks nobody runs any more, taken over by a live replica.

A gateway-run task's row (`gateway_runs`) names the replica running it
(`gateway.delegation.task_runner`). The replicas take over each other's
runs by the rule flow runs follow (`gateway.flows.takeover`): one small
piece, the replica directory (`gateway.storage.replicas`), decides who is
gone -- a replica whose row is absent (a clean stop), or has not been renewed
for `replica_stale_seconds` (a crash) as judged by a replica that has itself
been renewing its own all that while, so a database outage is not a death.

Every ``poll`` seconds (`gateway_run_poll_seconds`) each replica:

* stops its runs whose row is gone or no longer its own (canceled elsewhere,
  taken over);
* takes back its own runs whose coroutine is no longer alive here (a bug, an
  interruption; or, when `replica_id` is fixed, what it was running when it
  was killed and started again) -- never one stored and about to start;
* takes over the runs of replicas that are gone.

So a run is taken over at most ``replica_stale_seconds + poll`` seconds after
its replica died, at once after a clean stop, and within ``poll`` after its
coroutine died (docs/operations.md, "Guarantees"). A claim is a
compare-and-set on the row (its runner and attempts), so one replica takes a
run however many look. The claiming replica asks whether the run can be
resumed (`resumable`: an approved A2A call whose upstream task is known is
followed, not made again); otherwise it fails the task with a clear reason
or, for a skill the operator marked idempotent, runs the call again (at
most `MAX_ATTEMPTS` times). Either way the send it interrupted is recorded
(`gateway.delegation.interrupted`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from a2a.types import TaskState
from sqlalchemy import cast, delete, null, select, tuple_, union_all, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit import AuditLog
from gateway.delegation.interrupted import record_interrupted
from gateway.delegation.run_rows import RUN_LEASE
from gateway.delegation.runs import MAX_ATTEMPTS, TERMINAL_NAMES, RunSpec, interrupted_call, spec_of
from gateway.delegation.task_runner import TaskRunner
from gateway.storage.outages import outage_of
from gateway.storage.periodic import ALONE_SECONDS, Periodic
from gateway.storage.replicas import ReplicaDirectory
from gateway.storage.tables import a2a_tasks, gateway_runs

logger = logging.getLogger(__name__)

# A run whose claim or resume failed is claimed again this much later, not
# at every look: each claim counts an attempt and records an interruption,
# and a run that fails to resume would fail the same way a poll later.
FAILED_RESUME_BACKOFF_SECONDS = 60.0


class TaskTakeover:
    def __init__(
        self,
        engine: AsyncEngine,
        runner: TaskRunner,
        replicas: ReplicaDirectory,
        *,
        poll_seconds: float,
        idempotent: Callable[[str, str | None], Awaitable[bool]],
        resumable: Callable[[RunSpec], Awaitable[bool]] | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._engine = engine
        self._runner = runner
        self._replicas = replicas
        self.poll = poll_seconds
        self._idempotent = idempotent
        self._resumable = resumable
        self._audit = audit
        # Runs whose resume failed, and when they may be claimed again.
        self._failing: dict[tuple[str, str], float] = {}
        # Whether the last look found rows (this replica's, or another's), and
        # whether the wait after it is the long one (`interval`).
        self._found = True
        self._waiting_long = False
        self.wake: Callable[[], None] | None = None  # the job's (`Periodic.wake`)
        runner.on_store = self._stored

    @property
    def replicas(self) -> ReplicaDirectory:
        return self._replicas

    def job(self) -> Periodic:
        """The look, as the `gateway-runs` job. At a fixed rate: the takeover
        bound counts on a look every poll."""
        look = Periodic("gateway-runs", self.interval, self.tick, fixed_rate=True)
        self.wake = look.wake
        self._replicas.on_others.append(look.wake)
        return look

    def interval(self) -> float:
        """``poll`` while there is anything to look after: rows found at the
        last look (this replica's, or another's: their replica may go), or
        runs here (running, or stored and not started: the look a store
        wakes may come before its commit). Else once a minute: a run stored
        here wakes the look (`_stored`), as a replica seen to start, stop or
        go stale does (`ReplicaDirectory.on_others`) -- so the runs of one
        that is gone are found then, and another replica merely running is
        no reason to look every poll. So the bounds below hold."""
        busy = self._found or self._runner.busy()
        self._waiting_long = not busy
        return self.poll if busy else max(self.poll, ALONE_SECONDS)

    def _stored(self) -> None:
        """A run's row is being stored here: looked after from now on."""
        if self._waiting_long and self.wake is not None:
            self._waiting_long = False
            self.wake()

    async def tick(self) -> None:
        """One look (every ``poll`` seconds, at a fixed rate:
        `gateway.storage.periodic`; a slow look does not push the next one
        back, so the takeover bound holds)."""
        alive = self._runner.alive()  # before the rows: each has its row by now
        held, runners = await self._runners()
        self._found = bool(held or runners)
        self._runner.stop_unheld(alive, held)
        # Asked after the rows were read: a run started meanwhile is here by now.
        orphans = [key for key in held if not self._runner.here(key)]
        if orphans and self._replicas.twin is None:  # a twin's runs look like orphans here
            await self._recover(await self._rows(orphans))
        await self._recover(await self._runs_of_gone_replicas(runners))

    async def _runners(self) -> tuple[set[tuple[str, str]], set[str]]:
        """The runs whose rows name this replica (their keys only: read every
        poll, while a row's request is needed only for the rare orphan), and
        the other replicas that rows name. One statement."""
        c = gateway_runs.c
        me = self._replicas.id
        mine = select(c.runner, c.agent_id, c.task_id).where(c.runner == me)
        none = cast(null(), c.task_id.type)
        others = select(c.runner, none, none).where(c.runner != me).distinct()
        async with self._engine.connect() as conn:
            rows = (await conn.execute(union_all(mine, others))).all()
        held = {(row[1], row[2]) for row in rows if row[0] == me}
        return held, {str(row[0]) for row in rows if row[0] != me}

    async def _rows(self, keys: list[tuple[str, str]]) -> list[Any]:
        c = gateway_runs.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(gateway_runs).where(
                    c.runner == self._replicas.id, tuple_(c.agent_id, c.task_id).in_(keys[:100])
                )
            )
            return list(rows.all())

    async def _runs_of_gone_replicas(self, runners: set[str], limit: int = 100) -> list[Any]:
        c = gateway_runs.c
        gone = await self._replicas.gone(runners) if runners else set()
        if not gone:
            return []
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(gateway_runs)
                .where(c.runner.in_(sorted(gone)), RUN_LEASE.free())
                .limit(limit)
            )
            return list(rows.all())

    async def _recover(self, rows: list[Any]) -> None:
        """Take each of ``rows``; one that fails does not hold up the others."""
        now = time.monotonic()
        for row in rows:
            key = (row.agent_id, row.task_id)
            if self._failing.get(key, 0.0) > now:
                continue  # its last resume failed: not claimed again (and counted) yet
            try:
                await self._take(row)
            except Exception as exc:
                if outage_of(exc) is not None:
                    raise  # the look ends; the job says the database is away
                if len(self._failing) > 10_000:
                    self._failing.clear()
                self._failing[key] = now + FAILED_RESUME_BACKOFF_SECONDS
                logger.exception("gateway-run task %s not taken over; tried again later", key[1])
            else:
                self._failing.pop(key, None)

    async def _take(self, row: Any) -> None:
        """Claim ``row`` (unless another replica did first, or it ended
        meanwhile) and resume it."""
        c = gateway_runs.c
        async with self._engine.begin() as conn:
            claimed = await conn.execute(
                update(gateway_runs)
                .where(
                    c.agent_id == row.agent_id,
                    c.task_id == row.task_id,
                    # As read, and not renewed meanwhile by an older gateway.
                    *RUN_LEASE.claim(row.runner, row.attempts),
                )
                .values(**RUN_LEASE.taken(self._replicas.id, row.attempts))
            )
        if not claimed.rowcount:
            return
        if row.runner != self._replicas.id:
            logger.warning(
                "replica %s takes over gateway-run task %s of replica %s, gone",
                self._replicas.id,
                row.task_id,
                row.runner,
            )
        with self._runner.claiming((row.agent_id, row.task_id)):
            await self._resume(spec_of(row))

    async def _resume(self, spec: RunSpec) -> None:
        state = await self._state(spec)
        if state in TERMINAL_NAMES:  # it ended; only the run row was left
            await self._interrupted(spec, f"its task had ended meanwhile ({state})")
            await self._forget(spec)
            return
        if self._resumable is not None and await self._resumable(spec):
            logger.info("following interrupted task %s upstream", spec.task_id)
            await self._interrupted(spec, "followed: the agent had named its task")
            await self._runner.start(spec, None, new=False, claimed=True)
            return
        retry = await self._idempotent(spec.agent_id, spec.turn.skill)
        if retry and spec.attempt <= MAX_ATTEMPTS:
            logger.info("retrying interrupted task %s (attempt %d)", spec.task_id, spec.attempt)
            await self._interrupted(spec, f"sent again (attempt {spec.attempt}): idempotent")
            await self._runner.start(spec, None, new=False, claimed=True)
            return
        await self._interrupted(spec, "not sent again: its outcome is unknown; task failed")
        reason = (
            f"the gateway was interrupted while this task ran, {MAX_ATTEMPTS} times"
            if retry
            else "the gateway was interrupted while this task ran; it was not run again "
            f"because skill {spec.turn.skill or '(none)'} is not marked idempotent"
        )
        ended = await self._runner.ended(spec, TaskState.TASK_STATE_FAILED, reason)
        await self._runner.finish(spec, ended)

    async def _interrupted(self, spec: RunSpec, then: str) -> None:
        call = interrupted_call(spec)
        if call is not None and self._audit is not None:
            await record_interrupted(self._audit, call, then)

    async def _state(self, spec: RunSpec) -> str | None:
        async with self._engine.connect() as conn:
            state: str | None = await conn.scalar(
                select(a2a_tasks.c.state).where(
                    a2a_tasks.c.agent_id == spec.agent_id, a2a_tasks.c.task_id == spec.task_id
                )
            )
        return state

    async def _forget(self, spec: RunSpec) -> None:
        """Delete the row of a run whose task had ended."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(gateway_runs).where(
                    gateway_runs.c.agent_id == spec.agent_id,
                    gateway_runs.c.task_id == spec.task_id,
                )
            )
