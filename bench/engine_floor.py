"""The durable engine's own cost per step: DBOS Transact running workflows of
no-op steps, nothing of the gateway's around them.

    python -m bench.engine_floor                  # SQLite system database
    python -m bench.engine_floor --database postgresql://postgres@127.0.0.1:5432/test

What DBOS spends to checkpoint one step (it looks for a recorded result, checks
the workflow was not cancelled, records the output) is the floor under any flow
step the gateway runs on it: `bench.flows` prints it beside the gateway's own
per-step cost, measured in the same run. CPU is this process's (all threads,
from /proc via `time.process_time`), per step, by the slope between workflows
of 1 and ``--steps + 1`` steps (what a workflow costs to start and end is left
out).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from dbos import DBOS


async def _noop(i: int) -> int:
    return i


@DBOS.workflow(name="bench.engine_floor")
async def _workflow(steps: int) -> int:
    for i in range(steps):
        await DBOS.run_step_async({"name": f"step {i}"}, _noop, i)
    return steps


async def _cpu_per_workflow(steps: int, workflows: int) -> float:
    started = time.process_time()
    for _ in range(workflows):
        handle: Any = await DBOS.start_workflow_async(_workflow, steps)
        await handle.get_result()
    return (time.process_time() - started) / workflows


async def measure(steps: int, workflows: int) -> float:
    """Seconds of CPU per step (DBOS already launched)."""
    await _cpu_per_workflow(steps, 3)  # warm: statements compiled, pools filled
    short = await _cpu_per_workflow(1, workflows)
    long = await _cpu_per_workflow(steps + 1, workflows)
    return (long - short) / steps


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
            per_step = asyncio.run(measure(args.steps, args.workflows))
        finally:
            DBOS.destroy()
    print(f"engine floor: {per_step * 1000:.2f} ms CPU per step")


if __name__ == "__main__":
    main()
