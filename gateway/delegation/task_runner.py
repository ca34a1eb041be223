"""Tasks the gateway runs itself, for agents that have no tasks of their own.

A call to a gateway-run agent (`gateway.agents.vendor`) becomes a run: a row in
`gateway_runs` (what to call, on whose behalf) and a background asyncio task
owned by the app's lifespan, so `returnImmediately` can answer at once and the
call goes on after the client has gone. What the run produces (A2A events,
ending in the task's final snapshot) is recorded in the task records
(`gateway.delegation.tasks.TaskRecords`: `GetTask` and `ListTasks` read them) and handed
to whoever streams or waits on this replica.

A run survives its replica, and ends exactly once: its row, who holds it
and how a claim is fenced are `gateway.delegation.run_rows`.

A run whose outcome is known is never lost: the final snapshot is written
with retries (backoff up to `FINISH_RETRY_SECONDS`) for as long as the
database is down, the run's coroutine staying alive meanwhile (so its
replica takes it over from nobody); a
caller blocked on the run is answered "database unavailable" (503) as soon as
the write is held up, not after the outage, and finds the outcome with GetTask
once it is written; a clean shutdown waits for those writes (up to
`CLOSE_WAIT_SECONDS`), and stops before its replica withdraws its row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

from a2a.server.events.event_queue import Event
from a2a.types import Task, TaskState
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.delegation.pipeline import Grant
from gateway.delegation.run_rows import RunLost, cancel_row, end_row, held, run_row
from gateway.delegation.runs import (
    ENDS,
    Execute,
    RunSpec,
    ended_snapshot,
    final_update,
    sending,
)
from gateway.delegation.tasks import TaskRecords
from gateway.storage.outages import DependencyUnavailable, outage_of
from gateway.storage.replicas import ReplicaDirectory
from gateway.storage.tables import gateway_runs

logger = logging.getLogger(__name__)

# How long a clean shutdown gives a run whose outcome is being written
# (through a database outage) to write it, before stopping it regardless.
CLOSE_WAIT_SECONDS = 30.0
# The longest wait between two tries at writing an outcome through an outage.
FINISH_RETRY_SECONDS = 5.0
# A run stored in a caller's transaction (`stored`) is started just after
# it commits; one not started this long after (that transaction failed, or
# its caller was cancelled between the two) is forgotten, and its row, if
# any, taken back as an orphan.
_STARTING_SECONDS = 60.0


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
        replicas: ReplicaDirectory,
    ) -> None:
        self._engine = engine
        self._tasks = tasks
        self._execute = execute
        self._replicas = replicas
        self._runs: dict[tuple[str, str], _Run] = {}
        # Runs whose row is being written in a caller's transaction (`stored`),
        # not started yet: when each was stored (monotonic).
        self._starting: dict[tuple[str, str], float] = {}
        # Runs the takeover has claimed and is resuming (`claiming`): kept
        # apart, so that a caller's start come too late is still refused.
        self._claiming: set[tuple[str, str]] = set()
        self._closing = False
        # Told when a run's row is about to be stored (the takeover's look, at
        # its long wait, is woken: `TaskTakeover.interval`).
        self.on_store: Callable[[], None] | None = None

    @property
    def runner_id(self) -> str:
        """The replica running the runs started here (its id names it in their rows)."""
        return self._replicas.id

    # Starting and watching --------------------------------------------------

    def stored(self, spec: RunSpec) -> Callable[[AsyncConnection], Awaitable[None]]:
        """Writes the run's row in a transaction of the caller's: the one that
        records its task (`TaskRecords.record(with_rows=...)`); then `start`
        it with ``new=False``."""

        async def store(conn: AsyncConnection) -> None:
            # Before the row can be seen: `_recover` takes a row of this
            # replica's with no run alive here for one it must resume.
            self._starting[(spec.agent_id, spec.task_id)] = time.monotonic()
            if self.on_store is not None:
                self.on_store()
            await conn.execute(insert(gateway_runs).values(**run_row(spec, self.runner_id)))

        return store

    async def start(
        self, spec: RunSpec, grant: Grant | None, *, new: bool = True, claimed: bool = False
    ) -> None:
        """Store the run (unless it is a claimed one, or was stored with its
        task: `stored`) and start it in the background. A run stored is
        started within `_STARTING_SECONDS`, or not by this call; a run the
        takeover claimed (``claimed``) only while it is being claimed."""
        if new:
            async with self._engine.begin() as conn:
                await self.stored(spec)(conn)
        key = (spec.agent_id, spec.task_id)
        if not new and key not in (self._claiming if claimed else self._starting):
            # Stored too long ago (`_STARTING_SECONDS`): its row is the
            # takeover's now, which may have run or ended it meanwhile.
            logger.warning("gateway-run task %s started too late: left to the takeover", key[1])
            return
        run = _Run(spec)
        self._runs[key] = run
        self._starting.pop(key, None)
        run.task = asyncio.create_task(self._run(run, grant), name=f"run-{spec.task_id}")

    async def sending(self, spec: RunSpec, grant: Grant, event: str) -> None:
        """Keep in the run's row what is about to be sent with ``grant``, before
        it is (a run taken over after a crash records it: `TaskTakeover`).
        Raises `RunLost`, and the call is not sent, if this replica no longer
        holds the run: another replica that took it over sends it, not both."""
        spec = replace(spec, sent=sending(grant, event))
        async with self._engine.begin() as conn:
            kept = await conn.execute(
                update(gateway_runs)
                .where(*held(spec, self.runner_id))
                .values(caller=run_row(spec, self.runner_id)["caller"])
            )
        if not kept.rowcount:
            raise RunLost(spec.task_id)

    async def holds(self, spec: RunSpec) -> bool:
        """Whether this replica still holds the run under ``spec``'s claim
        (`run_rows.held`): asked before a first send, whose mark was stored with the
        run (`stored`), so that a run claimed meanwhile is not sent twice."""
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(gateway_runs.c.task_id).where(*held(spec, self.runner_id))
            )
        return found is not None

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
            # Closed here, however the loop ends: the call's record is written
            # as its stream closes (`Delegate.open`), not by the collector.
            async with contextlib.aclosing(self._execute()(spec, grant)) as events:
                async for event in events:
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
        except RunLost:
            # Canceled elsewhere, or taken over by a replica that judged this
            # one gone: the call was not sent here, and the task is its holder's.
            logger.warning("gateway-run task %s is no longer held here: stopped", spec.task_id)
        except asyncio.CancelledError:
            if run.cancel_requested:
                ended = await self.ended(spec, TaskState.TASK_STATE_CANCELED)
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
                failed = await self.ended(spec, TaskState.TASK_STATE_FAILED, reason)
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
                return await self.finish(spec, task, known=known)
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
                delay = min(delay * 2, FINISH_RETRY_SECONDS)

    async def finish(self, spec: RunSpec, task: Task, *, known: bool = False) -> bool:
        """Write the final snapshot and end the run, if this replica still holds it
        (`run_rows.held`) -- or, for an outcome the upstream gave (``known``), if anyone
        still does: the upstream's answer to a call made is the task's truth,
        whoever claimed the run meanwhile."""
        if not await end_row(self._engine, spec, task, None if known else self.runner_id):
            return False
        # A flow run waiting on this task is woken now, not at its next look.
        self._tasks.written(spec.agent_id, task)
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
        # replica sees the run row gone at its next look (`task_takeover`).
        task = await cancel_row(self._engine, agent_id, task_id)
        if task is None:
            return False
        self._tasks.written(agent_id, task)
        return True

    async def ended(self, spec: RunSpec, state: TaskState, reason: str | None = None) -> Task:
        """The task's last snapshot, ended in ``state`` (with ``reason`` as its message)."""
        task = await self._tasks.get(spec.agent_id, spec.owner, spec.task_id)
        if task is None:
            task = Task(id=spec.task_id, context_id=spec.context_id)
        return ended_snapshot(task, reason, state)

    # What runs here, for the takeover (`gateway.delegation.task_takeover`) ------

    def alive(self) -> set[tuple[str, str]]:
        """The runs whose coroutine is alive here now."""
        return {key for key, run in self._runs.items() if run.alive}

    def stop_unheld(self, alive: set[tuple[str, str]], held: set[tuple[str, str]]) -> None:
        """Stop those of ``alive`` (taken before ``held`` was read) whose row
        is no longer this replica's: canceled elsewhere, or taken over (the
        record says so)."""
        for key in alive - held:
            run = self._runs.get(key)
            if run is not None and run.task and not run.finishing:
                run.task.cancel()
        # A run stored whose start never came (its caller's transaction
        # failed, or the caller was cancelled after the commit): forgotten
        # once it is old -- its row, if it has one, is then an orphan.
        now = time.monotonic()
        for key, since in list(self._starting.items()):
            if now - since > _STARTING_SECONDS:
                del self._starting[key]

    def busy(self) -> bool:
        """Whether any run is here: running, being started (its row perhaps
        not committed yet) or being claimed."""
        return bool(self._runs or self._starting or self._claiming)

    def here(self, key: tuple[str, str]) -> bool:
        """Whether run ``key`` is running here, or being started or claimed."""
        return key in self._runs or key in self._starting or key in self._claiming

    @contextlib.contextmanager
    def claiming(self, key: tuple[str, str]) -> Iterator[None]:
        """While run ``key``, claimed from the rows, is being resumed."""
        self._claiming.add(key)
        try:
            yield
        finally:
            self._claiming.discard(key)

    async def aclose(self) -> None:
        """Stop every run without ending its task. Its row stays this
        replica's: once the replica withdraws its own row (after this), it is
        gone, and the next replica to look (this one, restarted under the same
        `replica_id`) takes the runs over at once. A run whose outcome is
        being written (through an outage) is given up to `CLOSE_WAIT_SECONDS`
        to write it first."""
        self._closing = True
        writing = [r.task for r in self._runs.values() if r.finishing and r.task is not None]
        if writing:
            await asyncio.wait(writing, timeout=CLOSE_WAIT_SECONDS)
        runs = [r.task for r in self._runs.values() if r.task is not None]
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
