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
from typing import Any

from gateway.cli.call import where
from gateway.cli.common import gateway_options


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
    from gateway.cli.task_answers import exit_code, show_task
    from gateway.cli.task_follow import task_of

    base, token = where(args)
    url = f"{base}/a2a/{args.agent}"
    task = asyncio.run(task_of(url, token, args.task_id, args.follow, args.timeout))
    show_task(task)
    return exit_code(task)
