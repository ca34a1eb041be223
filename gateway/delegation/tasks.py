"""Who owns which A2A task: the gateway's record of every task created through it.

A task id is the upstream agent's own; the gateway serves each agent at its
own URL, so (agent, task id) names one task. The record keeps the owner (the
user at the origin of the call, `sub` + `iss`), the context, the last state
and the last snapshot seen, so that:

* `GetTask`, `CancelTask`, `SubscribeToTask` and push configs are refused with
  "task not found" (A2A 1.0 §3.1.3: never reveal that it exists) to anyone but
  the owner, whether the upstream checks or not;
* a message continuing someone else's task or context is refused the same way;
* a message continuing one's own task is decided for the skill the task was
  started for (`skill`, kept from the first record);
* `ListTasks` answers from here, with only the caller's tasks, and the whole
  thing survives a gateway restart and is shared by replicas;
* a flow triggered by a task's end acts for the task's user with what their
  call carried (`owner_caller`, kept from the first record: identity, scopes,
  actors -- never a token), and learns of the end from `ended_listeners`;
* a flow run waiting for a task learns of every state it is recorded in
  (`state_listeners`), not only of its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from a2a.types import (
    ListTasksRequest,
    ListTasksResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from sqlalchemy import ColumnElement, Table, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.a2a_json import message_json
from gateway.delegation import task_listing, task_statements
from gateway.delegation.held_updates import HeldUpdates
from gateway.delegation.permits import Caller
from gateway.delegation.task_statements import storable
from gateway.delegation.task_watch import TaskWatch
from gateway.storage.statements import Sql, statement_runner
from gateway.storage.tables import a2a_tasks

# The states a task ends in; a record reaching one is no longer out of contact.
TERMINAL_STATES = task_statements.TERMINAL_STATES
_IN_CONTACT = {
    "reconcile_at": None,
    "reconcile_since": None,
    "reconcile_attempts": None,
    "reconcile_caller": None,
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Owner:
    subject: str
    issuer: str
    # Who made the call, when known: kept with a task the first time it is
    # recorded. Not part of the owner's identity (equality, hash).
    caller: Caller | None = field(default=None, compare=False, repr=False)

    def owns(self, table: Table) -> ColumnElement[bool]:
        """The rows of ``table`` (with owner_subject/owner_issuer) that are theirs."""
        return and_(table.c.owner_subject == self.subject, table.c.owner_issuer == self.issuer)


@dataclass(frozen=True)
class EndedTask:
    """A task recorded in a terminal state (perhaps not for the first time)."""

    agent_id: str
    task_id: str
    state: str
    snapshot: dict[str, Any]


EndedListener = Callable[[EndedTask], Awaitable[None]]
# Told (agent id, task id, state name) of every record, at once and on the
# recording path: it must be cheap (a lookup) and start its own work.
StateListener = Callable[[str, str, str], None]


class TaskRecords:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # A task's record is written for every answer and stream event a
        # caller gets: its hot statements go the lean way
        # (`gateway.storage.statements`).
        self._run = statement_runner(engine)
        # A stream's later updates of its task, written a few at a time.
        self.held = HeldUpdates(self._run, self._written_held)
        # Told of every terminal record, after it is written, off the request's
        # path (a listener's failure is logged, never the caller's).
        self.ended_listeners: list[EndedListener] = []
        self.state_listeners: list[StateListener] = []
        self._telling: set[asyncio.Task[None]] = set()
        self._watched: dict[tuple[str, str], set[TaskWatch]] = {}

    @contextlib.contextmanager
    def watch(self, agent_id: str, task_id: str) -> Iterator[TaskWatch]:
        """A follower of the task that would otherwise poll its record: woken
        whenever this process records it (in any state)."""
        watch = TaskWatch()
        key = (agent_id, task_id)
        self._watched.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            watchers = self._watched.get(key)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watched[key]

    def written(self, agent_id: str, task: Task) -> None:
        """``task`` was written by a statement of another module's (a
        gateway-run task's end, `gateway.delegation.task_runner`): tell the
        watchers and listeners, as a record made here does."""
        self._recorded(agent_id, task.id, TaskState.Name(task.status.state), message_json(task))

    def _recorded(self, agent_id: str, task_id: str, state: str, snapshot: dict[str, Any]) -> None:
        for watch in self._watched.get((agent_id, task_id), ()):
            watch.changed.set()
        for heard in self.state_listeners:
            try:
                heard(agent_id, task_id, state)
            except Exception:
                logger.exception("a listener failed on task %s of %s", task_id, agent_id)
        if not self.ended_listeners or state not in TERMINAL_STATES:
            return
        ended = EndedTask(agent_id, task_id, state, snapshot)
        for listener in self.ended_listeners:
            told = asyncio.create_task(_tell(listener, ended))
            self._telling.add(told)
            told.add_done_callback(self._telling.discard)

    def _written_held(
        self, agent_id: str, task_id: str, states: list[str], snapshot: dict[str, Any]
    ) -> None:
        """Held updates were written (`HeldUpdates`): each state is told as
        its own record would have told it."""
        for state in states:
            self._recorded(agent_id, task_id, state, snapshot)

    async def told(self) -> None:
        """Until the listeners to every end recorded so far have heard it."""
        while self._telling:
            await asyncio.wait(set(self._telling))

    async def owner_of(self, agent_id: str, task_id: str) -> Owner | None:
        if not storable(task_id):
            return None
        found = await self._run.read(task_statements.owner_of, agent_id, task_id)
        return None if found is None else Owner(*found)

    async def aclose(self) -> None:
        await self.held.flush_all()
        await self._run.aclose()

    async def skill_of(self, agent_id: str, owner: Owner, task_id: str) -> tuple[bool, str | None]:
        """Whether the task is ``owner``'s, and the skill it was recorded for
        (None: no skill in particular, or recorded before the skill was)."""
        if not storable(task_id):
            return False, None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(a2a_tasks.c.skill).where(
                        a2a_tasks.c.agent_id == agent_id,
                        a2a_tasks.c.task_id == task_id,
                        owner.owns(a2a_tasks),
                    )
                )
            ).first()
        return (False, None) if row is None else (True, row.skill)

    async def context_owners(self, agent_id: str, context_id: str) -> set[Owner]:
        """Everyone who has a task in this context (normally one user, or nobody)."""
        if not storable(context_id):
            return set()
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(a2a_tasks.c.owner_subject, a2a_tasks.c.owner_issuer)
                    .where(a2a_tasks.c.agent_id == agent_id, a2a_tasks.c.context_id == context_id)
                    .distinct()
                    .limit(2)
                )
            ).all()
        return {Owner(r.owner_subject, r.owner_issuer) for r in rows}

    async def record(
        self,
        agent_id: str,
        owner: Owner,
        task: Task,
        skill: str | None = None,
        *,
        with_rows: Callable[[AsyncConnection], Awaitable[None]] | None = None,
        first: Callable[[Sql], Any] | None = None,
    ) -> bool:
        """Store the task snapshot; a task already owned by someone else is left
        alone and False returned (an upstream that reuses another user's task id
        must not hand it over). ``skill`` -- the skill the message that started
        it was decided for -- is kept from the first record on: an agent
        continues a task's own skill, so every message continuing it is decided
        for that one (`gateway.delegation.handoffs.message_skill`).
        ``with_rows`` writes more in the same transaction, when the task is
        stored: a task and the run that will end it exist together or not at
        all (`TaskRunner.stored`), so no outage or crash between two
        transactions leaves a task nothing will ever finish. ``first``: a lean
        write made first in the same transaction (a flow run's, also if no task is)."""
        if not storable(task.id) or (task.context_id and not storable(task.context_id)):
            if first is not None:
                await self._run(first)
            return False
        await self.held.flush(agent_id, task.id)  # held updates, then this snapshot
        now = datetime.now(UTC)
        snapshot = message_json(task)
        values: dict[str, Any] = {
            "context_id": task.context_id or None,
            "state": TaskState.Name(task.status.state),
            "updated_at": now,
            "task": snapshot,
        }
        if values["state"] in TERMINAL_STATES:
            values.update(_IN_CONTACT)
        if with_rows is not None:
            stored = await self._record_with_rows(
                agent_id, owner, task, skill, values, now, with_rows
            )
        else:
            caller = owner.caller.stored() if owner.caller else None
            args = (agent_id, _owned(owner), task.id, skill, caller, values, now)
            stored = await self._run(task_statements.record, first, *args)
        if stored:
            self._recorded(agent_id, task.id, values["state"], snapshot)
        return stored

    async def _record_with_rows(
        self,
        agent_id: str,
        owner: Owner,
        task: Task,
        skill: str | None,
        values: dict[str, Any],
        now: datetime,
        with_rows: Callable[[AsyncConnection], Awaitable[None]],
    ) -> bool:
        # The lean path's one statement (`task_statements.recording`), here on
        # the transaction ``with_rows`` writes in too.
        caller = owner.caller.stored() if owner.caller else None
        statement, params = task_statements.recording(
            agent_id, _owned(owner), task.id, skill, caller, values, now
        )
        async with self._engine.begin() as conn:
            stored = bool((await conn.execute(statement.clause, params)).rowcount)
            if stored:
                await with_rows(conn)
        return stored

    async def observe(
        self, agent_id: str, owner: Owner, event: object, skill: str | None = None
    ) -> bool:
        """Record what an event says about a task (a snapshot or a status
        update); False if it concerns a task someone else owns. ``skill``: as
        for `record`, for a task seen here first."""
        if isinstance(event, Task):
            return await self.record(agent_id, owner, event, skill)
        if isinstance(event, TaskStatusUpdateEvent):
            return await self.record_status(agent_id, owner, event, skill)
        if isinstance(event, TaskArtifactUpdateEvent):
            return await self.record_artifact(agent_id, owner, event)
        return True

    async def record_artifact(
        self, agent_id: str, owner: Owner, event: TaskArtifactUpdateEvent
    ) -> bool:
        """An artifact from a stream, kept in the task's snapshot: the record
        of a task followed on a stream holds its result, as one read with
        `GetTask` does (a flow's trigger and a `wait` read it). An artifact of
        a task not recorded yet is dropped (its first event records it);
        someone else's task is left alone (False)."""
        if not storable(event.task_id):
            return False
        await self.held.flush(agent_id, event.task_id)  # in the order they came
        found = await self._run(
            task_statements.record_artifact,
            agent_id,
            _owned(owner),
            event.task_id,
            message_json(event.artifact),
            event.append,
            datetime.now(UTC),
        )
        return found is not False

    async def record_status(
        self, agent_id: str, owner: Owner, event: TaskStatusUpdateEvent, skill: str | None = None
    ) -> bool:
        """A status update from a stream: the state moves and the snapshot's status
        follows. A task not seen before (a stream that starts with an update) is
        recorded from the update; someone else's task is left alone (False)."""
        if not storable(event.task_id):
            return False
        # Held updates first: a state held by a stream never lands after this one.
        await self.held.flush(agent_id, event.task_id)
        status = message_json(event.status)
        state = TaskState.Name(event.status.state)
        found = await self._run(
            task_statements.record_status,
            agent_id,
            _owned(owner),
            event.task_id,
            status,
            state,
            datetime.now(UTC),
        )
        if found is False:
            return False
        if isinstance(found, dict):
            self._recorded(agent_id, event.task_id, state, found)
            return True
        task = Task(id=event.task_id, context_id=event.context_id)
        task.status.CopyFrom(event.status)
        return await self.record(agent_id, owner, task, skill)

    async def get(self, agent_id: str, owner: Owner, task_id: str) -> Task | None:
        """The last snapshot of one of ``owner``'s tasks (None for anyone else's)."""
        if not storable(task_id):
            return None
        await self.held.flush(agent_id, task_id)  # read whole, never held + stored
        stored = await self._run.read(task_statements.snapshot_of, agent_id, _owned(owner), task_id)
        return None if stored is None else task_listing.snapshot(stored, ListTasksRequest())

    async def list(
        self, agent_id: str, owner: Owner, request: ListTasksRequest
    ) -> ListTasksResponse:
        page_size = task_listing.page_size_of(request)
        await self.held.flush_agent(agent_id)
        return await task_listing.page(self._engine, agent_id, _owned(owner), request, page_size)


def _owned(owner: Owner) -> task_statements.Owned:
    return owner.subject, owner.issuer


async def _tell(listener: EndedListener, ended: EndedTask) -> None:
    try:
        await listener(ended)
    except Exception:
        logger.exception("a listener failed on task %s of %s", ended.task_id, ended.agent_id)
