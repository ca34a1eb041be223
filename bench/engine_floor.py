"""The durable engine's own cost per step: DBOS Transact running workflows of
no-op steps, nothing of the gateway's around them.

    python -m bench.engine_floor                  # SQLite system database
    python -m bench.engine_floor --database postgresql://postgres@127.0.0.1:5432/test

What DBOS spends to checkpoint one step (it looks for a recorded result, checks
the workflow was not cancelled, records the output) is the floor under any flow
step the gateway runs on it: `bench.flows` prints it beside the gateway's own
per-step cost, measured in the same run. CPU is this process's (all threads,
from /proc via `time.process_time`), per step, by the slope between workflows
of 1 and ``--steps + 1`` steps; what a workflow costs to start and end (the
intercept) is printed apart. With a PostgreSQL server on this machine, its
CPU is read too (`bench.proc_cpu`): the engine's floor is what both spend,
on cores they share.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbos import DBOS

from bench.proc_cpu import postgres_cpu


async def _noop(i: int) -> int:
    return i


@DBOS.workflow(name="bench.engine_floor")
async def _workflow(steps: int) -> int:
    for i in range(steps):
        await DBOS.run_step_async({"name": f"step {i}"}, _noop, i)
    return steps


@dataclass(frozen=True)
class Spent:
    """CPU seconds per workflow: this process's, and the server's (None: not seen)."""

    client: float
    server: float | None


async def _cpu_per_workflow(steps: int, workflows: int, server: bool) -> Spent:
    # The server first: the clock then counts none of the /proc scan.
    server_before = postgres_cpu() if server else None
    started = time.process_time()
    for _ in range(workflows):
        handle: Any = await DBOS.start_workflow_async(_workflow, steps)
        await handle.get_result()
    client = (time.process_time() - started) / workflows
    server_after = postgres_cpu() if server else None
    if server_before is None or server_after is None:
        return Spent(client, None)
    return Spent(client, (server_after - server_before) / workflows)


@dataclass(frozen=True)
class Floor:
    """Seconds of CPU a step adds (the slope) and a workflow's start and end
    cost (the intercept): this process's and the server's."""

    step: Spent
    workflow: Spent


def floor_of(steps: int, short: Spent, long: Spent) -> Floor:
    """The line through a workflow of 1 step (``short``) and of ``steps + 1``
    (``long``): its slope per step, its intercept at 0 steps."""

    def slope(a: float, b: float) -> float:
        return (b - a) / steps

    step_client = slope(short.client, long.client)
    step_server = (
        None if short.server is None or long.server is None else slope(short.server, long.server)
    )
    workflow_server = (
        None if step_server is None or short.server is None else short.server - step_server
    )
    return Floor(
        Spent(step_client, step_server), Spent(short.client - step_client, workflow_server)
    )


async def measure(steps: int, workflows: int, server: bool) -> Floor:
    """CPU per step and per workflow (DBOS already launched); ``server``: the
    system database is a PostgreSQL server whose CPU is read too."""
    await _cpu_per_workflow(steps, 3, server)  # warm: statements compiled, pools filled
    short = await _cpu_per_workflow(1, workflows, server)
    long = await _cpu_per_workflow(steps + 1, workflows, server)
    return floor_of(steps, short, long)


def _ms(spent: Spent) -> str:
    server = "" if spent.server is None else f" + {spent.server * 1000:.2f} ms the server's"
    return f"{spent.client * 1000:.2f} ms CPU{server}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--database", help="a PostgreSQL URL (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-engine-") as temp:
        url = args.database or f"sqlite:///{Path(temp) / 'dbos.sqlite'}"
        DBOS(
            config={
                "name": "switchboard-bench-engine",
                "system_database_url": url,
                "executor_id": uuid.uuid4().hex,
            }
        )
        try:
            DBOS.launch()
            floor = asyncio.run(measure(args.steps, args.workflows, args.database is not None))
        finally:
            DBOS.destroy()
    print(f"engine floor: {_ms(floor.step)} per step")
    print(f"a workflow's start and end: {_ms(floor.workflow)}")


if __name__ == "__main__":
    main()
