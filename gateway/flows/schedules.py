"""Flows started on a schedule: `triggers: [{schedule: {cron}, run_as}]`.

The schedules are DBOS's own (its scheduler, in the gateway's database): one
per (flow, trigger), named ``switchboard-flow:<flow>:<trigger>``, kept equal
to what the flows' current versions declare every time a flow is registered
and at start-up (`sync`). At each tick DBOS starts the workflow
`scheduled` once -- its id is the schedule's name and the tick's time, so
replicas sharing the database do not start it twice -- and that workflow
starts the flow's run, acting for the trigger's `run_as` (a service identity
of the flow's own, issuer `urn:switchboard:trigger`, decided by the policy
like any caller), with a run id derived from the tick: a tick is one run.
A tick the policy refuses, or whose trigger is gone, starts nothing and is
audited (`flow.schedule`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from dbos import DBOS

from gateway.delegation.permits import DelegationDenied
from gateway.delegation.pipeline import ApprovalRequired
from gateway.flows.costs import BudgetSpent
from gateway.flows.definition import FlowDocument
from gateway.flows.expressions import evaluate
from gateway.flows.home_loop import at_home
from gateway.flows.service import FlowService, InputInvalid
from gateway.flows.started import derived_run_id, service_caller, start_once
from gateway.flows.store import FlowNotFound
from gateway.flows.trigger_definition import Trigger

logger = logging.getLogger(__name__)

PREFIX = "switchboard-flow:"
TICK_WORKFLOW = "switchboard.flow.scheduled"
_SERVICE: FlowService | None = None


def install(service: FlowService | None) -> None:
    """The service the scheduled workflow starts runs with (one per process, as DBOS)."""
    global _SERVICE
    _SERVICE = service


def schedule_name(flow_id: str, trigger_id: str) -> str:
    return f"{PREFIX}{flow_id}:{trigger_id}"


def tick_run_id(flow_id: str, trigger_id: str, at: str) -> str:
    return derived_run_id(flow_id, trigger_id, at)


@DBOS.workflow(name=TICK_WORKFLOW)
@at_home
async def scheduled(at: datetime, context: Any) -> None:
    await DBOS.run_step_async({"name": "start run"}, _tick, dict(context), at.isoformat())


async def sync(service: FlowService) -> int:
    """Make DBOS's schedules those the flows declare; returns how many there are."""
    wanted: dict[str, dict[str, Any]] = {}
    for record in await service.rt.store.list():
        document = FlowDocument.model_validate(record.document)
        for trigger in document.triggers:
            if trigger.schedule is None:
                continue
            wanted[schedule_name(document.id, trigger.id)] = {
                "schedule_name": schedule_name(document.id, trigger.id),
                "workflow_fn": scheduled,
                "schedule": trigger.schedule.cron,
                "cron_timezone": trigger.schedule.timezone,
                "context": {"flow": document.id, "trigger": trigger.id},
            }
    await service.engine.ensure()
    existing = await DBOS.list_schedules_async(schedule_name_prefix=PREFIX)
    for schedule in existing:
        if schedule["schedule_name"] not in wanted:
            await DBOS.delete_schedule_async(schedule["schedule_name"])
    if wanted:
        await DBOS.apply_schedules_async(list(wanted.values()))  # type: ignore[arg-type]
    return len(wanted)


async def _tick(context: dict[str, Any], at: str) -> str | None:
    service = _SERVICE
    if service is None:
        raise RuntimeError("the flows subsystem is not running in this process")
    flow_id, trigger_id = str(context["flow"]), str(context["trigger"])
    trigger = await _trigger(service, flow_id, trigger_id)
    if trigger is None or trigger.run_as is None:
        name = schedule_name(flow_id, trigger_id)
        logger.info("schedule %s ticked but its trigger is gone", name)
        return None
    run_id = tick_run_id(flow_id, trigger_id, at)
    try:
        await start_once(
            service,
            flow_id,
            service_caller("schedule", flow_id, trigger),
            lambda: _input(trigger, at),
            run_id=run_id,
            event="flow.schedule",
            said=f"schedule {trigger_id} at {at}",
        )
    except (DelegationDenied, ApprovalRequired, InputInvalid, BudgetSpent, ValueError) as exc:
        logger.info("schedule of flow %s at %s started nothing: %s", flow_id, at, exc)
        return None
    return run_id


async def _trigger(service: FlowService, flow_id: str, trigger_id: str) -> Trigger | None:
    try:
        record = await service.rt.store.get(flow_id)
    except FlowNotFound:
        return None
    document = FlowDocument.model_validate(record.document)
    return next(
        (t for t in document.triggers if t.id == trigger_id and t.schedule is not None), None
    )


def _input(trigger: Trigger, at: str) -> dict[str, Any]:
    if trigger.input is None:
        return {}
    found = evaluate(trigger.input, {"schedule": {"time": at}})
    if not isinstance(found, dict):
        raise ValueError(f"the run's input is {type(found).__name__}, not an object")
    return found
