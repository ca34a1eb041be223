"""Tasks the gateway runs itself, for agents that have no tasks of their own.

A call to a gateway-run agent (`gateway.agents.vendor`) becomes a run: a row in
`gateway_runs` (what to call, on whose behalf) and a background asyncio task
owned by the app's lifespan, so `returnImmediately` can answer at once and the
call goes on after the client has gone. What the run produces (A2A events,
ending in the task's final snapshot) is recorded in the task records
(`gateway.delegation.tasks.TaskRecords`: `GetTask` and `ListTasks` read them) and handed
to whoever streams or waits on this replica.

A run survives its replica. Every ``poll`` seconds (`gateway_run_poll_seconds`,
at most a third of the lease) each replica renews the lease of each run whose
coroutine is still alive -- per run, never "everything this replica holds",
so a run that died leaves a lease that runs out -- and claims the runs whose
lease ran out (a crash, a restart; a clean shutdown gives its leases up at
once). So a run is taken over at most ``lease + poll`` seconds after its
replica died (docs/operations.md, "Guarantees"). The claiming replica asks
whether the run can be resumed (`resumable`: an approved A2A call whose
upstream task is known is followed, not made again); otherwise it fails the
task with a clear reason or, for a skill the operator marked idempotent, runs
the call again (at most `MAX_ATTEMPTS` times).

A database outage is not a crash: a replica that could not reach the
database claims nothing until it has reached it again for a whole lease, so
the replicas whose runs outlived the outage renew them first.

A run whose outcome is known is never lost: the final snapshot is written
with retries (backoff up to ``poll``) for as long as the database is down,
the run's coroutine staying alive (and its lease renewed) meanwhile; a
caller blocked on the run is answered "database unavailable" (503) as soon as
the write is held up, not after the outage, and finds the outcome with GetTask
once it is written; a clean shutdown waits for those writes (up to ``lease``). An outcome from the
upstream takes the run over from any replica that claimed it meanwhile; the
gateway's own verdicts ("interrupted", "failed running it") are written only
by the replica holding the run. Cancelling deletes the run row and records
the task canceled in one transaction; the replica running it notices at its
next renewal and stops. The final snapshot is written in the transaction
that deletes the run row, so a run ends exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from a2a.server.events.event_queue import Event
from a2a.types import Task, TaskState
from google.protobuf.json_format import ParseDict
from sqlalchemy import delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.delegation.audit import AuditLog
from gateway.delegation.interrupted import record_interrupted
from gateway.delegation.pipeline import Grant
from gateway.delegation.runs import (
    ENDS,
    MAX_ATTEMPTS,
    TERMINAL_NAMES,
    Execute,
    RunSpec,
    ended_snapshot,
    final_update,
    final_write,
    interrupted_call,
    sending,
    spec_of,
)
from gateway.delegation.tasks import TaskRecords
from gateway.storage.outages import DependencyUnavailable, outage_of
from gateway.storage.tables import a2a_tasks, gateway_runs

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    spec: RunSpec
    task: asyncio.Task[None] | None = None
    subscribers: list[asyncio.Queue[Event | None]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False
    finishing: bool = False  # its outcome is known and being written
    # Set while the outcome's write waits for the database: a blocking caller
    # is answered 503 then instead of being held for the whole outage.
    stalled: DependencyUnavailable | None = None
    stalled_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()


class RunNotFound(Exception):
    """No task of that id is running (it ended, or never was)."""


class TaskRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        tasks: TaskRecords,
        execute: Callable[[], Execute],
        *,
        lease_seconds: float,
        idempotent: Callable[[str, str | None], Awaitable[bool]],
        poll_seconds: float | None = None,
        resumable: Callable[[RunSpec], Awaitable[bool]] | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._engine = engine
        self._tasks = tasks
        self._execute = execute
        self._lease = lease_seconds
        self.poll = min(poll_seconds or lease_seconds / 3, lease_seconds / 3)
        self._idempotent = idempotent
        self._resumable = resumable
        self._audit = audit
        self._runs: dict[tuple[str, str], _Run] = {}
        self._closing = False
        self.runner_id = uuid.uuid4().hex
        # Monotonic time before which this replica claims nothing: set a lease
        # ahead when it reaches the database again after failing to.
        self._claim_after = 0.0
        self._unreachable = False

    # Starting and watching --------------------------------------------------

    def stored(self, spec: RunSpec) -> Callable[[AsyncConnection], Awaitable[None]]:
        """Writes the run's row in a transaction of the caller's: the one that
        records its task (`TaskRecords.record(with_rows=...)`); then `start`
        it with ``new=False``."""

        async def store(conn: AsyncConnection) -> None:
            await conn.execute(insert(gateway_runs).values(**self._row(spec)))

        return store

    async def start(self, spec: RunSpec, grant: Grant | None, *, new: bool = True) -> None:
        """Store the run (unless it is a claimed one, or was stored with its
        task: `stored`) and start it in the background."""
        if new:
            async with self._engine.begin() as conn:
                await self.stored(spec)(conn)
        run = _Run(spec)
        self._runs[(spec.agent_id, spec.task_id)] = run
        run.task = asyncio.create_task(self._run(run, grant), name=f"run-{spec.task_id}")

    def _row(self, spec: RunSpec) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "agent_id": spec.agent_id,
            "task_id": spec.task_id,
            "skill": spec.turn.skill,
            "turn": asdict(spec.turn),
            "caller": {
                **asdict(spec.caller),
                "scopes": sorted(spec.caller.scopes),
                "actors": list(spec.caller.actors),
                "trace_id": spec.trace_id,
                **({"sent": spec.sent} if spec.sent is not None else {}),
            },
            "streaming": int(spec.streaming),
            "attempts": spec.attempt,
            "runner": self.runner_id,
            "lease_until": now + timedelta(seconds=self._lease),
            "created_at": now,
        }

    async def sending(self, spec: RunSpec, grant: Grant, event: str) -> None:
        """Keep in the run's row what is about to be sent with ``grant``, before
        it is (a run taken over after a crash records it: `_interrupted`)."""
        spec = replace(spec, sent=sending(grant, event))
        c = gateway_runs.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(gateway_runs)
                .where(c.agent_id == spec.agent_id, c.task_id == spec.task_id)
                .values(caller=self._row(spec)["caller"])
            )

    def events(self, agent_id: str, task_id: str) -> AsyncIterator[Event]:
        """The run's events from this call on, until it ends (`RunNotFound` if it
        is not running here). Subscribed at once, before the first iteration."""
        run = self._runs.get((agent_id, task_id))
        if run is None:
            raise RunNotFound(task_id)
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        run.subscribers.append(queue)
        return self._drain(run, queue)

    async def _drain(self, run: _Run, queue: asyncio.Queue[Event | None]) -> AsyncIterator[Event]:
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            with contextlib.suppress(ValueError):
                run.subscribers.remove(queue)

    async def wait(self, agent_id: str, task_id: str) -> None:
        """Until the run has ended and its outcome is written. Raises the
        outage if that write is held up by one: the run goes on writing it
        (the caller finds the outcome with GetTask later), but a blocking
        caller is not kept waiting as long as the database is down."""
        run = self._runs.get((agent_id, task_id))
        if run is None:
            return
        done = asyncio.ensure_future(run.done.wait())
        stalled = asyncio.ensure_future(run.stalled_event.wait())
        try:
            await asyncio.wait((done, stalled), return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            stalled.cancel()
        if not run.done.is_set() and run.stalled is not None:
            detail = f"the outcome of task {task_id} is not recorded yet; GetTask it later"
            raise DependencyUnavailable(run.stalled.dependency, detail)

    # Running ----------------------------------------------------------------

    async def _run(self, run: _Run, grant: Grant | None) -> None:
        spec = run.spec
        final: Task | None = None
        try:
            async for event in self._execute()(spec, grant):
                if isinstance(event, Task) and event.status.state in ENDS:
                    final = event
                    run.finishing = True
                    if not await self._finish_durably(spec, final, known=True):
                        return  # canceled or ended elsewhere meanwhile
                    self._publish(run, final_update(final))
                else:
                    await self._observe(spec, event)
                    self._publish(run, event)
            if final is None:
                raise RuntimeError("the run ended without a final task")
        except asyncio.CancelledError:
            if run.cancel_requested:
                ended = await self._ended(spec, TaskState.TASK_STATE_CANCELED)
                await self._finish_durably(spec, ended)
            elif not self._closing:
                raise
        except Exception as exc:
            outage = outage_of(exc)
            if outage is None:
                logger.exception("gateway-run task %s failed", spec.task_id)
            else:
                logger.error("gateway-run task %s failed: %s", spec.task_id, outage)
            reason = "the gateway failed running it" + (f" ({outage})" if outage else "")
            run.finishing = True
            failed = ended_snapshot(Task(id=spec.task_id, context_id=spec.context_id), reason)
            with contextlib.suppress(Exception):
                failed = await self._ended(spec, TaskState.TASK_STATE_FAILED, reason)
            await self._finish_durably(spec, failed)
        finally:
            self._runs.pop((spec.agent_id, spec.task_id), None)
            for queue in run.subscribers:
                queue.put_nowait(None)
            run.done.set()

    def _publish(self, run: _Run, event: Event) -> None:
        for queue in run.subscribers:
            queue.put_nowait(event)

    async def _observe(self, spec: RunSpec, event: Event) -> None:
        """Record an update on the way (best effort: the final snapshot says it all)."""
        try:
            await self._tasks.observe(spec.agent_id, spec.owner, event)
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            logger.warning("update of gateway-run task %s not recorded: %s", spec.task_id, exc)

    async def _finish_durably(self, spec: RunSpec, task: Task, *, known: bool = False) -> bool:
        """`_finish`, retried through a database outage until it is written."""
        delay = 0.2
        while True:
            try:
                return await self._finish(spec, task, known=known)
            except Exception as exc:
                outage = outage_of(exc)
                if outage is None:
                    raise
                run = self._runs.get((spec.agent_id, spec.task_id))
                if run is not None and run.stalled is None:
                    run.stalled = outage
                    run.stalled_event.set()
                logger.warning(
                    "outcome of gateway-run task %s not written yet (%s); retrying in %.1f s",
                    spec.task_id,
                    exc.__class__.__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.poll)

    async def _finish(self, spec: RunSpec, task: Task, *, known: bool = False) -> bool:
        """Write the final snapshot and end the run, if this replica still holds it
        -- or, for an outcome the upstream gave (``known``), if anyone still does."""
        c = gateway_runs.c
        where = [c.agent_id == spec.agent_id, c.task_id == spec.task_id]
        if not known:
            where.append(c.runner == self.runner_id)
        async with self._engine.begin() as conn:
            held = await conn.execute(delete(gateway_runs).where(*where))
            if not held.rowcount:
                return False
            await conn.execute(final_write(spec.agent_id, task))
        return True

    # Cancelling -------------------------------------------------------------

    async def cancel(self, agent_id: str, task_id: str) -> bool:
        """Stop a running task and record it canceled; False if it is not running."""
        run = self._runs.get((agent_id, task_id))
        if run is not None and run.task is not None:
            run.cancel_requested = True
            run.task.cancel()
            await run.done.wait()
            return True
        # Running on another replica (or orphaned): end it in the database; its
        # replica sees the run row gone at its next lease renewal.
        async with self._engine.begin() as conn:
            gone = await conn.execute(
                delete(gateway_runs).where(
                    gateway_runs.c.agent_id == agent_id, gateway_runs.c.task_id == task_id
                )
            )
            if not gone.rowcount:
                return False
            snapshot = await conn.scalar(
                select(a2a_tasks.c.task).where(
                    a2a_tasks.c.agent_id == agent_id, a2a_tasks.c.task_id == task_id
                )
            )
            task = Task(id=task_id)
            if snapshot is not None:
                ParseDict(snapshot, task, ignore_unknown_fields=True)
            task.status.Clear()
            task.status.state = TaskState.TASK_STATE_CANCELED
            await conn.execute(final_write(agent_id, task))
        return True

    # Leases and recovery ----------------------------------------------------

    async def tick(self) -> None:
        """Renew this runner's leases and take over runs whose lease ran out.
        Run every ``poll`` seconds at a fixed rate (`gateway.storage.periodic`:
        a slow tick does not push the next one back, so the takeover bound
        holds)."""
        try:
            await self._renew()
            now = asyncio.get_running_loop().time()
            if self._unreachable:
                # Back from an outage: the others could not renew either; give
                # them a lease to do so before judging their leases.
                self._unreachable = False
                self._claim_after = now + self._lease
                logger.warning("database reachable again; claiming no run for %g s", self._lease)
            if now >= self._claim_after:
                await self._recover()
        except Exception:
            self._unreachable = True
            raise

    async def _renew(self) -> None:
        """Extend the lease of each run whose coroutine is alive here; stop
        those whose row is gone (canceled elsewhere)."""
        c = gateway_runs.c
        until = datetime.now(UTC) + timedelta(seconds=self._lease)
        alive = [key for key, run in self._runs.items() if run.alive]
        async with self._engine.begin() as conn:
            for start in range(0, len(alive), 200):
                chunk = alive[start : start + 200]
                await conn.execute(
                    update(gateway_runs)
                    .where(c.runner == self.runner_id, tuple_(c.agent_id, c.task_id).in_(chunk))
                    .values(lease_until=until)
                )
            held = {
                (r.agent_id, r.task_id)
                for r in await conn.execute(
                    select(c.agent_id, c.task_id).where(c.runner == self.runner_id)
                )
            }
        for key in alive:
            run = self._runs.get(key)
            if key not in held and run is not None and run.task and not run.finishing:
                run.task.cancel()  # canceled or taken over: the record says so

    async def _recover(self) -> None:
        c = gateway_runs.c
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(gateway_runs).where(c.lease_until < now).limit(100))
            ).all()
        for row in rows:
            async with self._engine.begin() as conn:
                claimed = await conn.execute(
                    update(gateway_runs)
                    .where(
                        c.agent_id == row.agent_id,
                        c.task_id == row.task_id,
                        c.runner == row.runner,
                        c.lease_until < now,
                    )
                    .values(
                        runner=self.runner_id,
                        lease_until=now + timedelta(seconds=self._lease),
                        attempts=row.attempts + 1,
                    )
                )
            if claimed.rowcount:
                await self._resume(spec_of(row))

    async def _resume(self, spec: RunSpec) -> None:
        state = await self._state(spec)
        if state in TERMINAL_NAMES:  # it ended; only the run row was left
            await self._interrupted(spec, f"its task had ended meanwhile ({state})")
            await self._finish_quietly(spec)
            return
        if self._resumable is not None and await self._resumable(spec):
            logger.info("following interrupted task %s upstream", spec.task_id)
            await self._interrupted(spec, "followed: the agent had named its task")
            await self.start(spec, None, new=False)
            return
        retry = await self._idempotent(spec.agent_id, spec.turn.skill)
        if retry and spec.attempt <= MAX_ATTEMPTS:
            logger.info("retrying interrupted task %s (attempt %d)", spec.task_id, spec.attempt)
            await self._interrupted(spec, f"sent again (attempt {spec.attempt}): idempotent")
            await self.start(spec, None, new=False)
            return
        await self._interrupted(spec, "not sent again: its outcome is unknown; task failed")
        reason = (
            f"the gateway was interrupted while this task ran, {MAX_ATTEMPTS} times"
            if retry
            else "the gateway was interrupted while this task ran; it was not run again "
            f"because skill {spec.turn.skill or '(none)'} is not marked idempotent"
        )
        await self._finish(spec, await self._ended(spec, TaskState.TASK_STATE_FAILED, reason))

    async def _interrupted(self, spec: RunSpec, then: str) -> None:
        call = interrupted_call(spec)
        if call is not None and self._audit is not None:
            await record_interrupted(self._audit, call, then)

    async def _ended(self, spec: RunSpec, state: TaskState, reason: str | None = None) -> Task:
        """The task's last snapshot, ended in ``state`` (with ``reason`` as its message)."""
        task = await self._tasks.get(spec.agent_id, spec.owner, spec.task_id)
        if task is None:
            task = Task(id=spec.task_id, context_id=spec.context_id)
        return ended_snapshot(task, reason, state)

    async def _state(self, spec: RunSpec) -> str | None:
        async with self._engine.connect() as conn:
            state: str | None = await conn.scalar(
                select(a2a_tasks.c.state).where(
                    a2a_tasks.c.agent_id == spec.agent_id, a2a_tasks.c.task_id == spec.task_id
                )
            )
        return state

    async def _finish_quietly(self, spec: RunSpec) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(gateway_runs).where(
                    gateway_runs.c.agent_id == spec.agent_id,
                    gateway_runs.c.task_id == spec.task_id,
                )
            )

    async def aclose(self) -> None:
        """Stop every run without ending its task, and give up the leases so
        the next replica to look (this one, restarted) takes them over. A run
        whose outcome is being written (through an outage) is given up to a
        lease to write it first."""
        self._closing = True
        writing = [r.task for r in self._runs.values() if r.finishing and r.task is not None]
        if writing:
            await asyncio.wait(writing, timeout=self._lease)
        runs = [r.task for r in self._runs.values() if r.task is not None]
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        past = datetime.now(UTC) - timedelta(seconds=1)
        c = gateway_runs.c
        with contextlib.suppress(Exception):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(gateway_runs).where(c.runner == self.runner_id).values(lease_until=past)
                )
