"""Flows started by a delegated task's end: the support agent's escalation,
completed, starts the sales flow -- event-driven sequencing between agents
that do not know about each other.

A flow declares its triggers (`triggers:` in the document): an agent (and
skill) whose tasks, on reaching one of the given ends, start a run with an
input built from the task (`task.{id, agent, skill, state, output, text,
user}`). The run acts for **the task's user**, with what their call carried
and nothing more: the gateway keeps, with each task it records, the caller of
the call that started it -- identity, scopes, actor chain, never a token
(`a2a_tasks.owner_caller`) -- and the run is admitted for the flow exactly as
that user's own request through the same client would be (the policy's
`require` for the flow, its grant; the actor chain `[client, flow]`). The
agent whose task ended is not an actor: it did not delegate anything, an
administrator's trigger did, and the audit record of the start
(`flow.trigger`) names the task and its agent. A task recorded without its
caller (before migration 0016) starts nothing.

A flow is an agent, and its run is its task (`FlowRuntime.publish` records
it with the caller that started the run -- a user at `/a2a/{flow}`, a step of
another flow, or whoever a trigger acted for): a run's end fires the
triggers on that flow like any agent's task's end, with the run's output as
the task's output, for the same caller. Registration refuses triggers that
would loop (`gateway.flows.trigger_loops`).

Exactly once per (trigger, task): the run id is derived from both, so the
task's end seen again (a later GetTask, another replica, the sweep) finds the
run already there. The gateway learns of an end as it records it
(`TaskRecords.ended_listeners`); a sweep every `interval` seconds starts what
a crash between the two missed, for tasks that ended in the last hour and
after the trigger was registered (never for tasks that ended before).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.permits import Caller, DelegationDenied
from gateway.delegation.pipeline import ApprovalRequired
from gateway.delegation.tasks import EndedTask
from gateway.flows.costs import BudgetSpent
from gateway.flows.definition import FlowDocument
from gateway.flows.expressions import evaluate
from gateway.flows.service import FlowService, InputInvalid
from gateway.flows.started import derived_run_id, start_once
from gateway.flows.store import FlowNotFound
from gateway.flows.trigger_definition import TaskEvent, Trigger
from gateway.storage.flow_tables import flow_runs
from gateway.storage.tables import a2a_tasks
from registry.tables import as_utc

logger = logging.getLogger(__name__)

STATES = {
    "completed": "TASK_STATE_COMPLETED",
    "failed": "TASK_STATE_FAILED",
    "canceled": "TASK_STATE_CANCELED",
    "rejected": "TASK_STATE_REJECTED",
}
SWEEP_WINDOW = timedelta(hours=1)
_REFRESH_SECONDS = 5.0  # how stale this replica's view of the triggers may be


@dataclass(frozen=True)
class Armed:
    flow_id: str
    registered_at: datetime  # of the version declaring it: older task ends never fire
    trigger: Trigger

    @property
    def task(self) -> TaskEvent:
        assert self.trigger.task is not None  # only task triggers are armed here
        return self.trigger.task

    def wants(self, state: str) -> bool:
        return state in {STATES[s] for s in self.task.states}


def trigger_run_id(flow_id: str, trigger_id: str, agent_id: str, task_id: str) -> str:
    return derived_run_id(flow_id, trigger_id, agent_id, task_id)


class FlowTriggers:
    def __init__(self, service: FlowService, db: AsyncEngine, *, interval_seconds: float) -> None:
        self.service = service
        self.db = db
        self.interval_seconds = interval_seconds
        self._armed: dict[str, list[Armed]] = {}
        self._loaded = -float("inf")

    def forget(self) -> None:
        """A flow was registered here: read the triggers again at the next end."""
        self._loaded = -float("inf")

    async def armed(self) -> Mapping[str, list[Armed]]:
        """Per agent id, the triggers of every flow's current version."""
        if time.monotonic() - self._loaded > _REFRESH_SECONDS:
            armed: dict[str, list[Armed]] = {}
            for record in await self.service.rt.store.list():
                document = FlowDocument.model_validate(record.document)
                for trigger in document.triggers:
                    if trigger.task is None:
                        continue  # a webhook (`gateway.flows.webhooks`)
                    armed.setdefault(trigger.task.agent, []).append(
                        Armed(record.id, record.updated_at, trigger)
                    )
            self._armed, self._loaded = armed, time.monotonic()
        return self._armed

    async def on_ended(self, ended: EndedTask) -> None:
        for armed in (await self.armed()).get(ended.agent_id, []):
            if armed.wants(ended.state):
                await self.fire(armed, ended.agent_id, ended.task_id)

    async def sweep(self) -> int:
        """Start what an end seen during a crash did not; returns runs started."""
        started = 0
        now = datetime.now(UTC)
        for agent_id, armed_list in (await self.armed()).items():
            for armed in armed_list:
                since = max(armed.registered_at, now - SWEEP_WINDOW)
                wanted = [STATES[s] for s in armed.task.states]
                async with self.db.connect() as conn:
                    ended = (
                        await conn.execute(
                            select(a2a_tasks.c.task_id).where(
                                a2a_tasks.c.agent_id == agent_id,
                                a2a_tasks.c.state.in_(wanted),
                                a2a_tasks.c.updated_at >= since,
                            )
                        )
                    ).scalars()
                    task_ids = list(ended)
                for task_id in task_ids:
                    started += await self.fire(armed, agent_id, task_id)
        return started

    async def fire(self, armed: Armed, agent_id: str, task_id: str) -> int:
        """Start the run ``armed`` asks for on the task's end, once; 1 if started."""
        run_id = trigger_run_id(armed.flow_id, armed.trigger.id, agent_id, task_id)
        if await self._exists(run_id):
            return 0
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(a2a_tasks).where(
                        a2a_tasks.c.agent_id == agent_id, a2a_tasks.c.task_id == task_id
                    )
                )
            ).first()
        if row is None or not armed.wants(row.state):
            return 0
        if armed.task.skill is not None and row.skill != armed.task.skill:
            return 0
        if as_utc(row.updated_at) < armed.registered_at:
            return 0  # it ended before this trigger existed
        if row.owner_caller is None:
            logger.info("task %s of %s has no caller recorded: starts no flow", task_id, agent_id)
            return 0
        # The run's grant has a lifetime of its own (the user's token may be
        # long gone by now, as for any run that outlives it).
        caller = dataclasses.replace(Caller.from_stored(row.owner_caller), not_after=None)
        return await self._start(armed, caller, run_id, _task_view(row))

    async def _start(self, armed: Armed, caller: Caller, run_id: str, task: dict[str, Any]) -> int:
        said = f"trigger {armed.trigger.id} on task {task['id']} of {task['agent']}"
        try:
            started = await start_once(
                self.service,
                armed.flow_id,
                caller,
                lambda: _input(armed.trigger, task),
                run_id=run_id,
                event="flow.trigger",
                said=said,
            )
        except (
            DelegationDenied,
            ApprovalRequired,
            InputInvalid,
            BudgetSpent,
            ValueError,
            FlowNotFound,
        ) as exc:
            # FlowNotFound: removed on another replica, whose triggers this one
            # has not re-read yet.
            logger.info("flow %s not started by %s: %r", armed.flow_id, said, exc)
            return 0
        return int(started)

    async def _exists(self, run_id: str) -> bool:
        async with self.db.connect() as conn:
            found = await conn.scalar(select(flow_runs.c.id).where(flow_runs.c.id == run_id))
        return found is not None


def _task_view(row: Any) -> dict[str, Any]:
    """What a trigger's `input` reads of the task: `task.<...>`."""
    snapshot: dict[str, Any] = row.task or {}
    data: dict[str, Any] | None = None
    texts: list[str] = []
    for artifact in snapshot.get("artifacts") or []:
        for part in artifact.get("parts") or []:
            if "text" in part:
                texts.append(str(part["text"]))
            elif isinstance(part.get("data"), dict):
                data = {**(data or {}), **part["data"]}
    text = " ".join(texts)
    state = str(row.state).removeprefix("TASK_STATE_").lower()
    return {
        "id": row.task_id,
        "agent": row.agent_id,
        "skill": row.skill,
        "state": state,
        "output": data if data is not None else text,
        "text": text,
        "user": row.owner_subject,
    }


def _input(trigger: Trigger, task: dict[str, Any]) -> dict[str, Any]:
    if trigger.input is None:
        output = task["output"]
        return output if isinstance(output, dict) else {"text": task["text"]}
    found = evaluate(trigger.input, {"task": task})
    if not isinstance(found, dict):
        raise ValueError(f"trigger {trigger.id}: input is {type(found).__name__}, not an object")
    return found
