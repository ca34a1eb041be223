"""`switchboard tasks get`'s A2A side: `GetTask`, and with `--follow`
`SubscribeToTask` (or `GetTask` again where the agent does not stream).
Imported by that command alone, as `gateway.cli.task_answers`."""

from __future__ import annotations

import asyncio
import sys
import time

from a2a.client import A2AClientError, Client
from a2a.types import GetTaskRequest, SubscribeToTaskRequest, Task, TaskState
from a2a.utils.errors import A2AError

from gateway.cli.task_answers import ENDED, gateway_client, state_name

# Where --follow stops: the task has ended, or waits for its caller's answer.
# (Waiting for an approval, a deferral or a connection goes on by itself.)
_STOPS = ENDED | {TaskState.TASK_STATE_INPUT_REQUIRED}


async def task_of(url: str, token: str, task_id: str, follow: bool, seconds: float) -> Task:
    async with gateway_client(url, token, streaming=follow) as client:
        task = await client.get_task(GetTaskRequest(id=task_id))
        if follow:
            deadline = time.monotonic() + seconds if seconds > 0 else None
            task = await _follow(client, task, deadline)
    return task


async def _follow(client: Client, task: Task, deadline: float | None) -> Task:
    """``task`` once it has ended or asks for input (or at ``deadline``),
    each state it went through printed as it came."""
    _changed(task)
    shown = task.status.state
    streams = True
    while task.status.state not in _STOPS and not _past(deadline):
        if streams:
            try:
                async with asyncio.timeout(_left(deadline)):
                    async for event in client.subscribe(SubscribeToTaskRequest(id=task.id)):
                        kind = event.WhichOneof("payload")
                        if kind == "task":
                            task = event.task
                        elif kind == "status_update":
                            task.status.CopyFrom(event.status_update.status)
                        else:
                            continue
                        if task.status.state != shown:
                            _changed(task)
                            shown = task.status.state
                        if task.status.state in _STOPS:
                            break
            except TimeoutError:
                break
            except (A2AClientError, A2AError):
                streams = False  # no subscription here (say, an agent that does not stream)
        else:
            await asyncio.sleep(min(1.0, _left(deadline) or 1.0))
        # The stream ended (or there is none): where the task is now, in full.
        latest = await client.get_task(GetTaskRequest(id=task.id))
        if latest.status.state != shown:
            _changed(latest)
            shown = latest.status.state
        task = latest
    return task


def _changed(task: Task) -> None:
    said = " ".join(p.text for p in task.status.message.parts if p.HasField("text"))
    line = f"[{state_name(task.status.state)}]" + (f" {' '.join(said.split())}" if said else "")
    print(line, file=sys.stderr, flush=True)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
