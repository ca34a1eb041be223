"""`ListTasks` (A2A 1.0 §3.1.4) answered from the task records
(`gateway.delegation.tasks`): one owner's tasks of one agent, newest first,
a page at a time, behind a page token only this gateway issues."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from a2a.types import ListTasksRequest, ListTasksResponse, Task, TaskState
from google.protobuf.json_format import ParseDict, ParseError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.task_statements import Owned, storable
from gateway.storage.tables import a2a_tasks
from registry.tables import as_utc

# A2A 1.0 §3.1.4 (ListTasks): page size defaults to 50, at most 100.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class InvalidPageToken(ValueError):
    pass


def page_size_of(request: ListTasksRequest) -> int:
    """The page size ``request`` asks for; ValueError when out of bounds."""
    page_size = request.page_size or DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    if request.HasField("history_length") and request.history_length < 0:
        raise ValueError("historyLength must not be negative")
    return page_size


async def page(
    engine: AsyncEngine, agent_id: str, owner: Owned, request: ListTasksRequest, page_size: int
) -> ListTasksResponse:
    """One page of ``owner``'s tasks of ``agent_id`` (`page_size_of`'s size)."""
    c = a2a_tasks.c
    where = [c.agent_id == agent_id, c.owner_subject == owner[0], c.owner_issuer == owner[1]]
    if request.context_id:
        if not storable(request.context_id):
            # No task of ours is in such a context; PostgreSQL would refuse
            # the NUL outright (and a refused query must not read as an outage).
            return ListTasksResponse(page_size=page_size)
        where.append(c.context_id == request.context_id)
    if request.status:
        where.append(c.state == TaskState.Name(request.status))
    if request.HasField("status_timestamp_after"):
        where.append(c.updated_at >= request.status_timestamp_after.ToDatetime(tzinfo=UTC))
    async with engine.connect() as conn:
        total = await conn.scalar(select(func.count()).select_from(a2a_tasks).where(*where))
        if request.page_token:
            after_time, after_id = _decode_page_token(request.page_token)
            where.append(
                or_(
                    c.updated_at < after_time,
                    and_(c.updated_at == after_time, c.task_id < after_id),
                )
            )
        rows = (
            await conn.execute(
                select(c.task_id, c.updated_at, c.task)
                .where(*where)
                .order_by(c.updated_at.desc(), c.task_id.desc())
                .limit(page_size + 1)
            )
        ).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    tasks = [snapshot(row.task, request) for row in rows]
    next_token = _encode_page_token(as_utc(rows[-1].updated_at), rows[-1].task_id) if more else ""
    return ListTasksResponse(
        tasks=tasks, next_page_token=next_token, page_size=page_size, total_size=total or 0
    )


def snapshot(stored: dict[str, Any], request: ListTasksRequest) -> Task:
    task = Task()
    try:
        ParseDict(stored, task, ignore_unknown_fields=True)
    except (ParseError, RecursionError):
        # A row no parser can read (written before the doors' depth limit)
        # is shown by what it says of itself, not failing the whole listing.
        task = _unreadable(stored)
    if request.HasField("history_length"):
        keep = request.history_length
        history = list(task.history)[-keep:] if keep else []
        del task.history[:]
        task.history.extend(history)
    return task


def _encode_page_token(updated_at: datetime, task_id: str) -> str:
    raw = json.dumps([updated_at.isoformat(), task_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, task_id = json.loads(raw)
        if not isinstance(when, str) or not isinstance(task_id, str):
            raise TypeError
        return as_utc(datetime.fromisoformat(when)), task_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidPageToken("pageToken is not one this gateway issued") from exc


def _unreadable(stored: Any) -> Task:
    """What a stored task that cannot be parsed still says: its id, context
    and state (only when they are plain strings), and that it is unreadable."""
    said = stored if isinstance(stored, dict) else {}
    status = said.get("status") if isinstance(said.get("status"), dict) else {}
    state = status.get("state") if isinstance(status, dict) else None
    task = Task(
        id=said["id"] if isinstance(said.get("id"), str) else "",
        context_id=said["contextId"] if isinstance(said.get("contextId"), str) else "",
    )
    if isinstance(state, str) and state in TaskState.DESCRIPTOR.values_by_name:
        task.status.state = TaskState.Value(state)
    task.metadata.update({"switchboard": {"unreadable": "stored task could not be read"}})
    return task
