"""What a gateway-run task is: the call to make (`RunSpec`), the states that
end it, and how its final snapshot is written (`gateway.delegation.task_runner`
runs them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from a2a.server.events.event_queue import Event
from a2a.types import Message, Part, Role, Task, TaskState, TaskStatusUpdateEvent
from google.protobuf.json_format import MessageToDict
from sqlalchemy import update

from adapters.base import Turn
from gateway.delegation.interrupted import SentCall
from gateway.delegation.pipeline import Caller, Grant
from gateway.delegation.tasks import Owner
from gateway.storage.tables import a2a_tasks

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
    # What was about to be sent (`sending`): kept in the run's row before the
    # call leaves, so recovery can record a send it interrupted.
    sent: dict[str, Any] | None = None

    @property
    def owner(self) -> Owner:
        return Owner(self.caller.subject, self.caller.issuer, self.caller)


# Runs a spec: yields the A2A events of the call, the last one the task's
# final snapshot. ``grant`` is the admission's; None when a run is retried
# after an interruption (the executor decides again and mints anew).
Execute = Callable[[RunSpec, Grant | None], AsyncGenerator[Event]]


def spec_of(row: Any) -> RunSpec:
    caller = dict(row.caller)
    trace_id = str(caller.pop("trace_id", ""))
    sent = caller.pop("sent", None)
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
        sent=sent if isinstance(sent, dict) else None,
    )


def sending(grant: Grant, event: str) -> dict[str, Any]:
    """What a run's row keeps of the call it is about to make with ``grant``."""
    return {
        "event": event,
        "token_id": grant.token.token_id,
        "scopes": sorted(grant.decision.granted),
        "action": grant.action,
        "at": datetime.now(UTC).isoformat(),
    }


def interrupted_call(spec: RunSpec) -> SentCall | None:
    """The call a run was making, as `gateway.delegation.interrupted` records it."""
    if spec.sent is None:
        return None
    sent = spec.sent
    return SentCall(
        event=str(sent.get("event") or "a2a.run"),
        trace_id=spec.trace_id,
        caller=spec.caller,
        target=spec.agent_id,
        action=sent.get("action"),
        token_id=sent.get("token_id"),
        scopes=sent.get("scopes") or (),
        sent_at=datetime.fromisoformat(str(sent["at"])),
    )


def final_write(agent_id: str, task: Task) -> Any:
    return (
        update(a2a_tasks)
        .where(a2a_tasks.c.agent_id == agent_id, a2a_tasks.c.task_id == task.id)
        .values(
            state=TaskState.Name(task.status.state),
            updated_at=datetime.now(UTC),
            task=MessageToDict(task),
        )
    )


def ended_snapshot(
    task: Task, reason: str | None, state: TaskState = TaskState.TASK_STATE_FAILED
) -> Task:
    task.status.Clear()
    task.status.state = state
    if reason:
        task.status.message.CopyFrom(status_message(task.id, task.context_id, reason))
    return task


def status_message(task_id: str, context_id: str, text: str) -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def final_update(task: Task) -> TaskStatusUpdateEvent:
    event = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
    event.status.CopyFrom(task.status)
    # What the task's metadata says at its end (its usage, `adapters.usage`)
    # reaches a streaming caller too.
    event.metadata.CopyFrom(task.metadata)
    return event
