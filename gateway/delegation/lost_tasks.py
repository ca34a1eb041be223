"""A2A tasks the gateway lost contact with, until they are reconciled.

When the stream that followed a running task breaks (the agent died, the
connection dropped) or a `GetTask` cannot reach the agent, nobody follows the
task any more and its record would say "working" for good. The record is
marked instead (`a2a_tasks.reconcile_*`: when to ask next, since when
contact was lost, how many times asked, on whose behalf) and a background job
(`gateway.agents.reconcile`) asks the agent with backoff until it answers with
an end, or fails the task after `a2a_reconcile_max_seconds`.

The job looks every `a2a_reconcile_poll_seconds` while its replica knows of
marked tasks (its last look found some, or it marked one, which wakes it),
else every `IDLE_POLL_SECONDS` (`gateway.storage.periodic.Pace`): a task
marked by a replica gone since is found by the others' idle look.

Several replicas share the work without a lock: a replica takes a due row by
moving its `reconcile_at` forward with a compare-and-set on the value it read
(the UPDATE's WHERE), so exactly one replica asks about a task per attempt,
on SQLite and PostgreSQL alike; a replica that dies after taking a row only
delays that task to its next attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from a2a.types import Message, Part, Role, Task, TaskState
from google.protobuf.json_format import MessageToDict, ParseDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.pipeline import Caller
from gateway.delegation.tasks import TERMINAL_STATES, Owner
from gateway.storage.periodic import Pace
from gateway.storage.tables import a2a_tasks
from registry.tables import as_utc

RECONCILE_COLUMNS = ("reconcile_at", "reconcile_since", "reconcile_attempts", "reconcile_caller")


@dataclass(frozen=True)
class LostTask:
    agent_id: str
    task_id: str
    owner: Owner
    caller: Caller
    due: datetime
    since: datetime
    attempts: int


IDLE_POLL_SECONDS = 30.0


class LostTasks:
    def __init__(self, engine: AsyncEngine, poll_seconds: float = 5.0) -> None:
        self._engine = engine
        self.pace = Pace(poll_seconds, max(poll_seconds, IDLE_POLL_SECONDS))

    async def lost(self, agent_id: str, owner: Owner, task_id: str, caller: Caller) -> bool:
        """Mark one of ``owner``'s running tasks as out of contact (due at once);
        a task marked already is left as it is. False if the task is not
        theirs or has ended."""
        c = a2a_tasks.c
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(c.state, c.reconcile_since).where(
                        c.agent_id == agent_id, c.task_id == task_id, owner.owns(a2a_tasks)
                    )
                )
            ).first()
            if row is None or row.state in TERMINAL_STATES:
                return False
            if row.reconcile_since is not None:
                return True  # marked already: its attempts and backoff go on
            await conn.execute(
                update(a2a_tasks)
                .where(c.agent_id == agent_id, c.task_id == task_id)
                .values(
                    reconcile_at=now,
                    reconcile_since=now,
                    reconcile_attempts=0,
                    reconcile_caller=caller.stored(),
                )
            )
        self.pace.kept()
        return True

    async def due(self, limit: int = 20) -> list[LostTask]:
        c = a2a_tasks.c
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        c.agent_id,
                        c.task_id,
                        c.owner_subject,
                        c.owner_issuer,
                        *(getattr(c, name) for name in RECONCILE_COLUMNS),
                    )
                    # Every marked task, the due first: whether any is
                    # marked sets the pace.
                    .where(c.reconcile_at.is_not(None))
                    .order_by(c.reconcile_at)
                    .limit(limit)
                )
            ).all()
        self.pace.looked(bool(rows))
        return [
            LostTask(
                agent_id=r.agent_id,
                task_id=r.task_id,
                owner=Owner(r.owner_subject, r.owner_issuer),
                caller=Caller.from_stored(r.reconcile_caller),
                due=as_utc(r.reconcile_at),
                since=as_utc(r.reconcile_since),
                attempts=r.reconcile_attempts or 0,
            )
            for r in rows
            if r.reconcile_caller is not None
            and r.reconcile_since is not None
            and as_utc(r.reconcile_at) <= now
        ]

    async def take(self, lost: LostTask, next_at: datetime) -> bool:
        """Take ``lost`` for one attempt (the next one is at ``next_at``);
        False if another replica took it first."""
        c = a2a_tasks.c
        async with self._engine.begin() as conn:
            taken = await conn.execute(
                update(a2a_tasks)
                .where(
                    c.agent_id == lost.agent_id,
                    c.task_id == lost.task_id,
                    c.reconcile_at == lost.due,
                )
                .values(reconcile_at=next_at, reconcile_attempts=lost.attempts + 1)
            )
        return bool(taken.rowcount)

    async def in_contact(self, lost: LostTask) -> None:
        """The agent answered (the task still runs): the limit counts from now."""
        c = a2a_tasks.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(a2a_tasks)
                .where(c.agent_id == lost.agent_id, c.task_id == lost.task_id)
                .values(reconcile_since=datetime.now(UTC))
            )

    async def forget(self, lost: LostTask) -> None:
        c = a2a_tasks.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(a2a_tasks)
                .where(c.agent_id == lost.agent_id, c.task_id == lost.task_id)
                .values(**dict.fromkeys(RECONCILE_COLUMNS))
            )

    async def fail(self, lost: LostTask, reason: str) -> bool:
        """Record the task failed with ``reason``, unless it has ended meanwhile."""
        c = a2a_tasks.c
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(c.task, c.state).where(
                        c.agent_id == lost.agent_id, c.task_id == lost.task_id
                    )
                )
            ).first()
            if row is None or row.state in TERMINAL_STATES:
                return False
            task = Task()
            ParseDict(row.task, task, ignore_unknown_fields=True)
            task.status.Clear()
            task.status.state = TaskState.TASK_STATE_FAILED
            task.status.message.CopyFrom(
                Message(
                    message_id=f"gateway-lost-{lost.task_id}"[:256],
                    role=Role.ROLE_AGENT,
                    parts=[Part(text=reason)],
                    task_id=task.id,
                    context_id=task.context_id,
                )
            )
            task.status.timestamp.FromDatetime(datetime.now(UTC))
            task.metadata.update({"gatewayVerdict": "lost-contact"})
            values: dict[str, Any] = dict.fromkeys(RECONCILE_COLUMNS)
            changed = await conn.execute(
                update(a2a_tasks)
                .where(
                    c.agent_id == lost.agent_id,
                    c.task_id == lost.task_id,
                    c.state.not_in(TERMINAL_STATES),
                )
                .values(
                    state="TASK_STATE_FAILED",
                    updated_at=datetime.now(UTC),
                    task=MessageToDict(task),
                    **values,
                )
            )
        return bool(changed.rowcount)


def backoff(poll_seconds: float, attempts: int) -> timedelta:
    """The wait before attempt ``attempts + 1``: ``poll`` doubling, at most 12 polls."""
    return timedelta(seconds=min(poll_seconds * 2 ** max(attempts - 1, 0), poll_seconds * 12))
