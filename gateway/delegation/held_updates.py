"""A stream's updates of a task, written a few at a time.

A stream that reports its progress and sends its result in chunks would
otherwise cost one database transaction per event. Once a stream has
written its task's record (so the task is known to be its caller's: that
write checks), the artifact updates and the status updates that follow are
held here and written together, in order, in one transaction
(`task_statements.record_updates`):

- ``delay`` seconds after the first one held, or once ``most`` are held;
- at once with a status the task stops in -- an end, or a state that asks
  for input (`holds_status`): held with what came before it and flushed
  before the event is passed on, so a record that says a task ended, or
  waits, is written before its caller hears it;
- before anything else is recorded for the task (the relay flushes before
  any other event, so the record sees the events in order);
- before the task's record is read (`TaskRecords.get` and `list` flush
  first, so a `GetTask` in the middle of a stream sees every update relayed
  so far, once: what is held is never added to what is read);
- when the stream ends, however it ends: the relay flushes shielded from
  cancellation, so a caller who goes away loses no update the gateway took.

Held updates are this process's: another worker reading the task meanwhile
sees the record up to ``delay`` seconds behind, never an update twice. The
states a flush wrote are told to ``written`` in order, as a record of each
would tell them (`TaskRecords`' watchers and state listeners).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from a2a.types import TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent

from adapters.a2a_json import message_json
from gateway.delegation import task_statements
from gateway.delegation.task_statements import ArtifactUpdate, StatusUpdate
from gateway.storage.statements import StatementRunner

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (agent id, task id)
Owned = tuple[str, str]  # (subject, issuer)
# Told (agent id, task id, the states written in order, the new snapshot).
Written = Callable[[str, str, list[str], dict[str, Any]], None]
# The states a stream goes on from: any other is written at once.
_PASSING = frozenset({TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING})


def holds_status(event: TaskStatusUpdateEvent) -> bool:
    """Whether a status update may wait for the next flush: a state the task
    goes on from, not one it ends or waits in."""
    return event.status.state in _PASSING


@dataclass
class _Held:
    owner: Owned
    updates: list[ArtifactUpdate | StatusUpdate] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class HeldUpdates:
    """Updates held per task, and the writes that flush them."""

    def __init__(
        self,
        run: StatementRunner,
        written: Written | None = None,
        *,
        delay: float = 0.05,
        most: int = 64,
    ) -> None:
        self._run = run
        self._written = written
        self._delay = delay
        self._most = most
        self._held: dict[Key, _Held] = {}
        # One flush of a task at a time, in the order asked: a later batch is
        # never written before an earlier one.
        self._locks: dict[Key, tuple[asyncio.Lock, int]] = {}
        self._timed: set[asyncio.Task[None]] = set()

    async def hold(
        self,
        agent_id: str,
        owner: Owned,
        event: TaskArtifactUpdateEvent | TaskStatusUpdateEvent,
    ) -> None:
        """An update of a task whose record the stream wrote already (so the
        task is known to be ``owner``'s), held to be written later; a status
        the task stops in is written now, with what was held before it."""
        task_id = event.task_id
        key = (agent_id, task_id)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(owner)
            loop = asyncio.get_running_loop()
            held.timer = loop.call_later(self._delay, self._flush_later, key)
        if isinstance(event, TaskStatusUpdateEvent):
            update: ArtifactUpdate | StatusUpdate = StatusUpdate(
                message_json(event.status), TaskState.Name(event.status.state)
            )
        else:
            update = ArtifactUpdate(message_json(event.artifact), event.append)
        held.updates.append(update)
        stops = isinstance(event, TaskStatusUpdateEvent) and not holds_status(event)
        if stops or len(held.updates) >= self._most:
            await self.flush(agent_id, task_id)

    def holds(self, agent_id: str, task_id: str) -> bool:
        return (agent_id, task_id) in self._held

    async def flush(self, agent_id: str, task_id: str) -> None:
        """Write what is held for the task (nothing held: nothing done)."""
        key = (agent_id, task_id)
        if key not in self._held and key not in self._locks:
            return
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                await self._flush_held(agent_id, task_id)
        finally:
            lock, users = self._locks[key]
            if users > 1:
                self._locks[key] = (lock, users - 1)
            else:
                del self._locks[key]

    async def _flush_held(self, agent_id: str, task_id: str) -> None:
        key = (agent_id, task_id)
        held = self._held.pop(key, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        try:
            found = await self._run(
                task_statements.record_updates,
                *(agent_id, held.owner, task_id, held.updates, datetime.now(UTC)),
            )
        except BaseException:
            # Held again, ahead of any held since: the next flush (the
            # stream's own at its end, at the latest) writes them.
            later = self._held.get(key)
            if later is not None:
                held.updates += later.updates
                if later.timer is not None:
                    later.timer.cancel()
            held.timer = None
            self._held[key] = held
            raise
        states = [u.state for u in held.updates if isinstance(u, StatusUpdate)]
        if states and isinstance(found, dict) and self._written is not None:
            self._written(agent_id, task_id, states, found)

    async def flush_agent(self, agent_id: str) -> None:
        """Write what is held for every task of the agent (before a listing)."""
        for held_agent, task_id in list(self._held):
            if held_agent == agent_id:
                await self.flush(held_agent, task_id)

    async def flush_all(self) -> None:
        for agent_id, task_id in list(self._held):
            await self.flush(agent_id, task_id)
        while self._timed:
            await asyncio.wait(set(self._timed))

    def _flush_later(self, key: Key) -> None:
        timed = asyncio.create_task(self._flush_logged(*key))
        self._timed.add(timed)
        timed.add_done_callback(self._timed.discard)

    async def _flush_logged(self, agent_id: str, task_id: str) -> None:
        try:
            await self.flush(agent_id, task_id)
        except Exception:
            # Held again: the stream's own flush at its end tries again.
            logger.exception("updates of task %s of %s not written", task_id, agent_id)
