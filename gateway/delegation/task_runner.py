"""Tasks the gateway runs itself, for agents that have no tasks of their own.

A call to a gateway-run agent (`gateway.a2a.vendor`) becomes a run: a row in
`gateway_runs` (what to call, on whose behalf) and a background asyncio task
owned by the app's lifespan, so `returnImmediately` can answer at once and the
call goes on after the client has gone. What the run produces (A2A events,
ending in the task's final snapshot) is recorded in the task records
(`gateway.delegation.tasks.TaskRecords`: `GetTask` and `ListTasks` read them) and handed
to whoever streams or waits on this replica.

A run survives its replica: the replica renews a lease on its runs every
``lease_seconds / 3``; a run whose lease ran out (a crash, a restart -- a
clean shutdown gives its leases up at once) is claimed by whichever replica
looks next, which fails the task with a clear reason or, for a skill the
operator marked idempotent, runs the call again (at most `MAX_ATTEMPTS`
times). Cancelling deletes the run row and records the task canceled in one
transaction; the replica running it notices at its next renewal and stops.
The final snapshot is written in the same transaction that deletes the run
row, and only by the replica holding it, so a run ends exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from a2a.server.events.event_queue import Event
from a2a.types import Message, Part, Role, Task, TaskState, TaskStatusUpdateEvent
from google.protobuf.json_format import MessageToDict, ParseDict
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import Turn
from gateway.delegation.pipeline import Caller, Grant
from gateway.delegation.tasks import Owner, TaskRecords
from gateway.storage.tables import a2a_tasks, gateway_runs

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
TERMINAL = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
TERMINAL_NAMES = frozenset(TaskState.Name(s) for s in TERMINAL)
# A run ends with its task in one of these: terminal, or paused by the agent
# for the caller (an approved call whose upstream asked for input).
ENDS = TERMINAL | {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED}


@dataclass(frozen=True)
class RunSpec:
    """One call to run: stored whole, so another replica can run it again."""

    agent_id: str
    task_id: str
    context_id: str
    caller: Caller
    trace_id: str
    turn: Turn
    streaming: bool
    attempt: int = 1

    @property
    def owner(self) -> Owner:
        return Owner(self.caller.subject, self.caller.issuer)


# Runs a spec: yields the A2A events of the call, the last one the task's
# final snapshot. ``grant`` is the admission's; None when a run is retried
# after an interruption (the executor decides again and mints anew).
Execute = Callable[[RunSpec, Grant | None], AsyncIterator[Event]]


@dataclass
class _Run:
    spec: RunSpec
    task: asyncio.Task[None] | None = None
    subscribers: list[asyncio.Queue[Event | None]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False


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
    ) -> None:
        self._engine = engine
        self._tasks = tasks
        self._execute = execute
        self._lease = lease_seconds
        self._idempotent = idempotent
        self._runs: dict[tuple[str, str], _Run] = {}
        self._closing = False
        self.runner_id = uuid.uuid4().hex

    # Starting and watching --------------------------------------------------

    async def start(self, spec: RunSpec, grant: Grant | None, *, new: bool = True) -> None:
        """Store the run (unless it is a claimed one) and start it in the background."""
        if new:
            async with self._engine.begin() as conn:
                await conn.execute(insert(gateway_runs).values(**self._row(spec)))
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
            },
            "streaming": int(spec.streaming),
            "attempts": spec.attempt,
            "runner": self.runner_id,
            "lease_until": now + timedelta(seconds=self._lease),
            "created_at": now,
        }

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
        run = self._runs.get((agent_id, task_id))
        if run is not None:
            await run.done.wait()

    # Running ----------------------------------------------------------------

    async def _run(self, run: _Run, grant: Grant | None) -> None:
        spec = run.spec
        final: Task | None = None
        try:
            async for event in self._execute()(spec, grant):
                if isinstance(event, Task) and event.status.state in ENDS:
                    final = event
                    if not await self._finish(spec, final):
                        return  # canceled or claimed elsewhere meanwhile
                    self._publish(run, _final_update(final))
                else:
                    await self._tasks.observe(spec.agent_id, spec.owner, event)
                    self._publish(run, event)
            if final is None:
                raise RuntimeError("the run ended without a final task")
        except asyncio.CancelledError:
            if run.cancel_requested:
                await self._finish(spec, await self._ended(spec, TaskState.TASK_STATE_CANCELED))
            elif not self._closing:
                raise
        except Exception:
            logger.exception("gateway-run task %s failed", spec.task_id)
            reason = "the gateway failed running it"
            await self._finish(spec, await self._ended(spec, TaskState.TASK_STATE_FAILED, reason))
        finally:
            self._runs.pop((spec.agent_id, spec.task_id), None)
            for queue in run.subscribers:
                queue.put_nowait(None)
            run.done.set()

    def _publish(self, run: _Run, event: Event) -> None:
        for queue in run.subscribers:
            queue.put_nowait(event)

    async def _finish(self, spec: RunSpec, task: Task) -> bool:
        """Write the final snapshot and end the run, if this replica still holds it."""
        c = gateway_runs.c
        async with self._engine.begin() as conn:
            held = await conn.execute(
                delete(gateway_runs).where(
                    c.agent_id == spec.agent_id,
                    c.task_id == spec.task_id,
                    c.runner == self.runner_id,
                )
            )
            if not held.rowcount:
                return False
            await conn.execute(_final_write(spec.agent_id, task))
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
            await conn.execute(_final_write(agent_id, task))
        return True

    # Leases and recovery ----------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # pragma: no cover - never let the runner die
                logger.exception("gateway-run lease renewal failed")
            await asyncio.sleep(self._lease / 3)

    async def tick(self) -> None:
        await self._renew()
        await self._recover()

    async def _renew(self) -> None:
        c = gateway_runs.c
        until = datetime.now(UTC) + timedelta(seconds=self._lease)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(gateway_runs).where(c.runner == self.runner_id).values(lease_until=until)
            )
            held = {
                (r.agent_id, r.task_id)
                for r in await conn.execute(
                    select(c.agent_id, c.task_id).where(c.runner == self.runner_id)
                )
            }
        for key, run in list(self._runs.items()):
            if key not in held and run.task is not None:
                run.task.cancel()  # canceled elsewhere: the record says so already

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
                await self._resume(_spec_of(row))

    async def _resume(self, spec: RunSpec) -> None:
        state = await self._state(spec)
        if state in TERMINAL_NAMES:  # it ended; only the run row was left
            await self._finish_quietly(spec)
            return
        retry = await self._idempotent(spec.agent_id, spec.turn.skill)
        if retry and spec.attempt <= MAX_ATTEMPTS:
            logger.info("retrying interrupted task %s (attempt %d)", spec.task_id, spec.attempt)
            await self.start(spec, None, new=False)
            return
        reason = (
            f"the gateway was interrupted while this task ran, {MAX_ATTEMPTS} times"
            if retry
            else "the gateway was interrupted while this task ran; it was not run again "
            f"because skill {spec.turn.skill or '(none)'} is not marked idempotent"
        )
        await self._finish(spec, await self._ended(spec, TaskState.TASK_STATE_FAILED, reason))

    async def _ended(self, spec: RunSpec, state: TaskState, reason: str | None = None) -> Task:
        """The task's last snapshot, ended in ``state`` (with ``reason`` as its message)."""
        task = await self._tasks.get(spec.agent_id, spec.owner, spec.task_id)
        if task is None:
            task = Task(id=spec.task_id, context_id=spec.context_id)
        task.status.Clear()
        task.status.state = state
        if reason:
            task.status.message.CopyFrom(status_message(spec.task_id, spec.context_id, reason))
        return task

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
        the next replica to look (this one, restarted) takes them over."""
        self._closing = True
        runs = [r.task for r in self._runs.values() if r.task is not None]
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        past = datetime.now(UTC) - timedelta(seconds=1)
        with contextlib.suppress(Exception):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(gateway_runs)
                    .where(gateway_runs.c.runner == self.runner_id)
                    .values(lease_until=past)
                )


def _spec_of(row: Any) -> RunSpec:
    caller = dict(row.caller)
    trace_id = str(caller.pop("trace_id", ""))
    caller["scopes"] = frozenset(caller["scopes"])
    caller["actors"] = tuple(caller["actors"])
    turn = Turn(**row.turn)
    return RunSpec(
        agent_id=row.agent_id,
        task_id=row.task_id,
        context_id=turn.context_id,
        caller=Caller(**caller),
        trace_id=trace_id,
        turn=turn,
        streaming=bool(row.streaming),
        attempt=row.attempts + 1,
    )


def _final_write(agent_id: str, task: Task) -> Any:
    return (
        update(a2a_tasks)
        .where(a2a_tasks.c.agent_id == agent_id, a2a_tasks.c.task_id == task.id)
        .values(
            state=TaskState.Name(task.status.state),
            updated_at=datetime.now(UTC),
            task=MessageToDict(task),
        )
    )


def status_message(task_id: str, context_id: str, text: str) -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def _final_update(task: Task) -> TaskStatusUpdateEvent:
    event = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
    event.status.CopyFrom(task.status)
    return event
