"""Schedule ticks missed while no gateway ran (`schedule.catch_up`).

DBOS's scheduler fires a schedule's ticks from the moment its thread starts
in a launched process; the ticks that fell while no gateway process ran are
not fired. DBOS can backfill -- `DBOS.backfill_schedule` enqueues every tick
of a window under the tick's own workflow id, the one the live scheduler
uses, skipping those that exist -- and has an `automatic_backfill` flag, which
backfills every tick since the schedule last fired, without a cap: a gateway
down for a month on a per-minute schedule would start 43,200 runs. So the
gateway picks the window itself, per schedule, at start-up:

* `last_fired` reads when each schedule last fired (DBOS's own record,
  `last_fired_at`) *before* DBOS launches here: once it runs, this process's
  scheduler may fire a new tick and overwrite it;
* `catch_up`, once the engine runs, backfills the ticks after that -- and
  after the flow's current version was registered: a tick before it was
  never this version's -- up to the moment the engine was launched: none
  (`none`, the default), the newest (`latest`), or the newest `catch_up_max`
  (`all`, default 10). The older ones are skipped; the audit log says so
  (`flow.schedule`, outcome `caught_up`).

A tick is DBOS's workflow ``sched-<schedule>-<tick>`` and its run's id derives
from the tick (`schedules.tick_run_id`), so a tick starts one run however
many replicas catch up at once, and however often the gateway restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from dbos import DBOS, DBOSClient, DBOSPortableJSONSerializer

from adapters.trace_context import new_trace_id
from gateway.delegation.audit_records import AuditEvent
from gateway.flows.definition import FlowDocument
from gateway.flows.engine import SCHEMA, ended_before_stop, system_database_url
from gateway.flows.schedules import PREFIX, schedule_name
from gateway.flows.service import FlowService
from gateway.flows.started import ISSUER
from gateway.flows.trigger_definition import Schedule, Trigger

logger = logging.getLogger(__name__)

DEFAULT_MAX = 10


@dataclass(frozen=True)
class Fired:
    """Each flow schedule's last tick (None: it never fired), as read at ``at``."""

    at: datetime
    last: Mapping[str, datetime | None] = field(default_factory=dict)


async def last_fired(service: FlowService, database_url: str) -> Fired | None:
    """What DBOS recorded before this process launched it; None if no flow
    asks for a catch-up (nothing read: most gateways pay nothing), or if it
    is unreadable (its tables not made yet, say): then nothing is caught up."""
    if not any(
        trigger.schedule is not None and trigger.schedule.catch_up in ("latest", "all")
        for record in await service.rt.store.list()
        for trigger in FlowDocument.model_validate(record.document).triggers
    ):
        return None

    def read() -> dict[str, datetime | None]:
        client = DBOSClient(
            system_database_url=system_database_url(database_url),
            dbos_system_schema=SCHEMA,
            serializer=DBOSPortableJSONSerializer(),
            retry_connection_errors=False,
        )
        try:
            found = client.list_schedules(schedule_name_prefix=PREFIX)
        finally:
            client.destroy()
        return {s["schedule_name"]: _instant(s.get("last_fired_at")) for s in found}

    try:
        last = await asyncio.to_thread(read)
    except Exception as exc:
        logger.warning("cannot tell which schedule ticks were missed: %s", exc)
        return None
    return Fired(datetime.now(UTC), last)


async def catch_up(service: FlowService, fired: Fired | None) -> int:
    """Backfill what each schedule's `catch_up` asks for; returns ticks enqueued."""
    if fired is None:
        return 0
    enqueued = 0
    for record in await service.rt.store.list():
        document = FlowDocument.model_validate(record.document)
        for trigger in document.triggers:
            schedule = trigger.schedule
            name = schedule_name(document.id, trigger.id)
            if schedule is None or schedule.catch_up in (None, "none") or name not in fired.last:
                continue  # a schedule made just now missed nothing
            since = max(fired.last[name] or record.updated_at, record.updated_at)
            limit = 1 if schedule.catch_up == "latest" else schedule.catch_up_max or DEFAULT_MAX
            ticks, before, skipped = missed(schedule, since, fired.at, limit)
            try:
                new = await _not_started(name, ticks)
                if not new:
                    continue  # caught up already (another replica, an earlier start)
                # DBOS's window is open at both ends: from the tick before the
                # first to just after the last, so exactly these ticks.
                await asyncio.to_thread(
                    DBOS.backfill_schedule, name, before, ticks[-1] + timedelta(milliseconds=1)
                )
                enqueued += len(new)
                await _audit(service, document.id, trigger, new, skipped, limit)
            except Exception as exc:  # a database outage: logged, the gateway starts anyway
                logger.warning("schedule %s: missed ticks not caught up: %s", name, exc)
    return enqueued


def missed(
    schedule: Schedule, after: datetime, until: datetime, limit: int
) -> tuple[list[datetime], datetime, bool]:
    """The newest ``limit`` ticks in (after, until], oldest first; the tick
    before the first; and whether older ticks in the window are left out."""
    zone = ZoneInfo(schedule.timezone) if schedule.timezone else UTC
    # Walked back from the end: a month of a per-second schedule is never
    # enumerated, only the ticks that are kept (and one more).
    ticks = croniter(schedule.cron, until.astimezone(zone), second_at_beginning=True)
    kept: list[datetime] = []
    while True:
        tick: datetime = ticks.get_prev(datetime)
        if len(kept) == limit or tick <= after:
            return kept[::-1], tick, len(kept) == limit and tick > after
        kept.append(tick)


async def _not_started(name: str, ticks: list[datetime]) -> list[datetime]:
    """The ticks DBOS has no workflow for: its id is the one its scheduler and
    `backfill_schedule` give a tick ("the same deterministic workflow ID as
    the live scheduler", `dbos._scheduler`)."""
    if not ticks:
        return []
    ids = {f"sched-{name}-{tick.isoformat()}": tick for tick in ticks}
    found = await ended_before_stop(
        DBOS.list_workflows_async(workflow_ids=list(ids), load_input=False, load_output=False)
    )
    started = {status.workflow_id for status in found}
    return [tick for workflow_id, tick in ids.items() if workflow_id not in started]


async def _audit(
    service: FlowService,
    flow_id: str,
    trigger: Trigger,
    ticks: list[datetime],
    skipped: bool,
    limit: int,
) -> None:
    assert trigger.run_as is not None  # a schedule's trigger has one (`definition`)
    actor = f"schedule:{flow_id}/{trigger.id}"
    said = (
        f"schedule {trigger.id}: {len(ticks)} tick(s) missed while no gateway ran "
        f"started late ({ticks[0].isoformat()} to {ticks[-1].isoformat()})"
    )
    if skipped:
        said += f"; older missed ticks skipped (at most {limit})"
    logger.info("flow %s: %s", flow_id, said)
    await service.rt.delegations.record_event(
        AuditEvent(
            event="flow.schedule",
            trace_id=new_trace_id(),
            subject=trigger.run_as.subject,
            subject_issuer=ISSUER,
            client_id=actor,
            actors=(actor,),
            decision="allow",
            outcome="caught_up",
            target=flow_id,
            action=trigger.id,
            detail=said,
        )
    )


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    found = datetime.fromisoformat(value)
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)
