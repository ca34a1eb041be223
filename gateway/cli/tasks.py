"""`switchboard tasks get ID --agent AGENT [--follow]`: where a task started
through the gateway is, and its answer -- say one `switchboard call` left
waiting for an approval (exit 3). It asks the agent's A2A door at the
gateway (`/a2a/{AGENT}`), as any A2A client would: `GetTask`, and with
`--follow` `SubscribeToTask` (polling `GetTask` where the agent does not
stream), printing each state the task goes through until it has ended or
asks for input.

A task id is the agent's own, so the agent is named (`--agent`, the id
`switchboard call` was given). Only the task's own caller sees it: the same
`--token` / `$SWITCHBOARD_TOKEN`, or `--as` (with `--scope`) on a `--dev`
gateway. Exit codes as `switchboard call`'s: 0 completed, 1 failed, canceled
or rejected, 3 not ended (waiting for input or approval, or working), 2 the
gateway refused (an unknown task is "task not found").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httpx
from a2a.client import A2AClientError, Client, ClientConfig, ClientFactory
from a2a.types import GetTaskRequest, SubscribeToTaskRequest, Task, TaskState
from a2a.utils.errors import A2AError

from gateway.cli.call import (
    ENDED,
    client_error,
    exit_code,
    rpc_error,
    show_task,
    state_name,
    where,
)
from gateway.cli.common import CliError, gateway_options

# Where --follow stops: the task has ended, or waits for its caller's answer.
# (Waiting for an approval, a deferral or a connection goes on by itself.)
_STOPS = ENDED | {TaskState.TASK_STATE_INPUT_REQUIRED}


def register(commands: Any) -> None:
    tasks = commands.add_parser(
        "tasks", help="tasks started through the gateway: where they are, their answer"
    ).add_subparsers(title="tasks commands")
    get = tasks.add_parser(
        "get",
        help="a task's state and its answer (or why it waits); --follow until it ends",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get.add_argument("task_id", metavar="ID", help="the task's id (as `switchboard call` prints)")
    get.add_argument(
        "--agent", required=True, help="the agent the task is with (as given to `call`)"
    )
    get.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="wait until it ends or asks for input, printing each state it goes through",
    )
    get.add_argument(
        "--timeout",
        type=float,
        default=0,
        help="with --follow: give up after this many seconds (exit 3; default: never)",
    )
    get.add_argument("--as", dest="user", help="with a dev gateway: as this user")
    get.add_argument("--scope", default="", help="with --as: the user's scopes")
    gateway_options(get)
    get.set_defaults(run=_get)


def _get(args: argparse.Namespace) -> int:
    base, token = where(args)
    url = f"{base}/a2a/{args.agent}"
    task = asyncio.run(_task(url, token, args.task_id, args.follow, args.timeout))
    show_task(task)
    return exit_code(task)


async def _task(url: str, token: str, task_id: str, follow: bool, seconds: float) -> Task:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=300) as http:
        try:
            client = await ClientFactory(
                ClientConfig(httpx_client=http, streaming=follow)
            ).create_from_url(url)
            task = await client.get_task(GetTaskRequest(id=task_id))
            if follow:
                deadline = time.monotonic() + seconds if seconds > 0 else None
                task = await _follow(client, task, deadline)
        except A2AClientError as exc:
            raise CliError(f"{url}: {client_error(exc)}") from None
        except A2AError as exc:  # the gateway's JSON-RPC error (task not found, ...)
            raise CliError(f"{url}: {rpc_error(exc)}") from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {url}: {exc}") from None
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
