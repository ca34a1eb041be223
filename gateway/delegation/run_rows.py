"""A gateway-run task's row in `gateway_runs`: what to call and on whose
behalf, and who holds the run (`gateway.delegation.task_runner` runs it).

A run survives its replica: its row names the replica running it (the
replica's id, `gateway.storage.replicas`), and the runs nobody runs any more
-- a replica's that is gone, or its own whose coroutine died -- are taken
over by `gateway.delegation.task_takeover`.

An outcome from the upstream takes the run over from any replica that
claimed it meanwhile; the gateway's own verdicts ("interrupted", "failed
running it") are written only by the replica holding the run, and only under
the claim it holds (its runner and `attempts`, which every claim raises:
`held`), so a replica that was judged gone while it still ran neither sends
a run taken over from it (`TaskRunner.sending` raises `RunLost`) nor ends it.
Cancelling deletes the run row and records the task canceled in one
transaction (`cancel_row`); the replica running it notices at its next look
and stops. The final snapshot is written in the transaction that deletes the
run row (`end_row`), so a run ends exactly once.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from a2a.types import Task, TaskState
from google.protobuf.json_format import ParseDict
from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.runs import RunSpec, final_write
from gateway.delegation.sending import HandedOn
from gateway.storage.leases import Lease
from gateway.storage.tables import a2a_tasks, gateway_runs

# A run's lease (`gateway.storage.leases`): its runner, under the claim
# counted by `attempts`.
RUN_LEASE = Lease(gateway_runs.c.runner, gateway_runs.c.attempts, gateway_runs.c.lease_until)


class RunLost(HandedOn):
    """This replica no longer holds the run: its row is gone (canceled
    elsewhere) or names another holder or a later claim (taken over). Nothing
    more is sent or written for it here -- its call's record included: the
    run's holder ends the call (`HandedOn`)."""


def run_row(spec: RunSpec, runner: str) -> dict[str, Any]:
    """The row of ``spec``'s run, held by the replica ``runner``."""
    now = datetime.now(UTC)
    return {
        "agent_id": spec.agent_id,
        "task_id": spec.task_id,
        "skill": spec.turn.skill,
        "turn": asdict(spec.turn),
        "caller": {
            **asdict(spec.caller),
            "scopes": sorted(spec.caller.scopes),
            "actors": list(spec.caller.actors),
            "trace_id": spec.trace_id,
            **({"sent": spec.sent} if spec.sent is not None else {}),
        },
        "streaming": int(spec.streaming),
        **RUN_LEASE.kept(runner, spec.attempt),
        "created_at": now,
    }


def held(spec: RunSpec, runner: str) -> list[ColumnElement[bool]]:
    """The run's row as long as ``runner`` holds it: its runner and the
    claim ``spec`` was resumed under (`attempts`, raised by each claim:
    `task_takeover`). The lease's generation, checked by every write a
    holder makes, so a replica a claim passed by writes nothing."""
    c = gateway_runs.c
    return [
        c.agent_id == spec.agent_id,
        c.task_id == spec.task_id,
        *RUN_LEASE.held(runner, spec.attempt),
    ]


async def end_row(engine: AsyncEngine, spec: RunSpec, task: Task, runner: str | None) -> bool:
    """Delete the run's row and write ``task``, its final snapshot, in one
    transaction: if ``runner`` still holds it (`held`), or -- None -- if
    anyone does. False, and nothing written, when nobody does."""
    c = gateway_runs.c
    where = (
        [c.agent_id == spec.agent_id, c.task_id == spec.task_id]
        if runner is None
        else held(spec, runner)
    )
    async with engine.begin() as conn:
        found = await conn.execute(delete(gateway_runs).where(*where))
        if not found.rowcount:
            return False
        await conn.execute(final_write(spec.agent_id, task))
    return True


async def cancel_row(engine: AsyncEngine, agent_id: str, task_id: str) -> Task | None:
    """End a run held anywhere: its row deleted and its task recorded
    canceled, in one transaction; the task as written (None: no run)."""
    async with engine.begin() as conn:
        gone = await conn.execute(
            delete(gateway_runs).where(
                gateway_runs.c.agent_id == agent_id, gateway_runs.c.task_id == task_id
            )
        )
        if not gone.rowcount:
            return None
        snapshot = await conn.scalar(
            select(a2a_tasks.c.task).where(
                a2a_tasks.c.agent_id == agent_id, a2a_tasks.c.task_id == task_id
            )
        )
        task = Task(id=task_id)
        if snapshot is not None:
            ParseDict(snapshot, task, ignore_unknown_fields=True)
        task.status.Clear()
        task.status.state = TaskState.TASK_STATE_CANCELED
        await conn.execute(final_write(agent_id, task))
    return task
