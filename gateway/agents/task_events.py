"""The caller's own tasks, and the task an event is about."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from a2a.server.events.event_queue import Event
from a2a.types import (
    ListTasksRequest,
    ListTasksResponse,
    StreamResponse,
)
from a2a.utils.errors import (
    InvalidParamsError,
)

from gateway.delegation.tasks import Owner, TaskRecords
from gateway.delegation.upstream_failures import UpstreamBadAnswerError


async def list_own_tasks(
    tasks: TaskRecords, agent_id: str, owner: Owner, params: ListTasksRequest
) -> ListTasksResponse:
    """`ListTasks` from the gateway's records: only ``owner``'s tasks."""
    try:
        page = await tasks.list(agent_id, owner, params)
    except ValueError as exc:  # a bad pageToken (InvalidPageToken) or bound
        raise InvalidParamsError(str(exc)) from None
    if not params.include_artifacts:
        for task in page.tasks:
            task.ClearField("artifacts")
    return page


def task_id_of(item: StreamResponse) -> str:
    kind = item.WhichOneof("payload")
    if kind == "task":
        return str(item.task.id)
    if kind in ("status_update", "artifact_update"):
        return str(getattr(item, kind).task_id)
    return str(item.message.task_id) if kind == "message" else ""


def event_of(item: StreamResponse) -> Event:
    kind = item.WhichOneof("payload")
    if kind is None:
        raise UpstreamBadAnswerError("the agent sent an empty stream event")
    event: Event = getattr(item, kind)
    return event


async def first_then_rest(first: Event, rest: AsyncGenerator[Event]) -> AsyncGenerator[Event]:
    """A stream whose first event was taken to look at it, whole again."""
    yield first
    async with contextlib.aclosing(rest):
        async for event in rest:
            yield event
