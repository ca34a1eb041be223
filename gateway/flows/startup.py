"""The flows subsystem's start-up: the flow agents' handler (built with the
app, before the routes) and the parts it works with (built in the lifespan).

The engine (DBOS) is launched here when a flow is already stored -- which
also takes up the runs a previous process left unfinished -- else by the first
registration. The approvals desk tells the engine of every decision, which
wakes a run waiting at that checkpoint; the task records tell it of every
task's end, which starts triggered runs and wakes runs waiting on that task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from gateway.agents.approvals import ApprovalDesk
from gateway.agents.startup import Agents
from gateway.delegation.approvals import Approval
from gateway.delegation.startup import DelegationCore
from gateway.federation.federation import McpFederation
from gateway.flows import checkpoints, deep_approvals, mailbox, schedule_catch_up, schedules
from gateway.flows.agent import FlowAgentHandler
from gateway.flows.cards import KIND
from gateway.flows.engine import FlowEngine
from gateway.flows.retention import RunRetention
from gateway.flows.runtime import FlowRuntime, FlowSettings
from gateway.flows.service import FlowService
from gateway.flows.store import FlowStore
from gateway.flows.takeover import RunTakeover
from gateway.flows.task_waits import TaskWakeUps
from gateway.flows.triggers import FlowTriggers
from gateway.settings import Settings
from gateway.storage.periodic import Periodic
from gateway.storage.replicas import ReplicaDirectory


@dataclass(frozen=True)
class FlowParts:
    service: FlowService
    engine: FlowEngine
    takeover: RunTakeover | None
    retention: RunRetention
    triggers: FlowTriggers

    def jobs(self) -> list[Periodic]:
        retention, triggers = self.retention, self.triggers
        jobs = [
            Periodic("flow-retention", retention.interval_seconds, retention.sweep, now=False),
            Periodic("flow-triggers", triggers.interval_seconds, triggers.sweep, now=False),
        ]
        if self.takeover is not None:
            takeover = self.takeover
            sweep = Periodic("flow-takeover", takeover.interval, takeover.sweep, now=False)
            takeover.replicas.on_others.append(sweep.wake)
            jobs.append(sweep)
        return jobs


class FlowsDoor:
    def __init__(self, a2a: Agents) -> None:
        self._parts: FlowParts | None = None
        self._a2a = a2a
        self.handler = FlowAgentHandler(a2a.front_door_parts, self.service)
        a2a.gateway_runs.kinds[KIND] = self.handler

    @property
    def parts(self) -> FlowParts:
        assert self._parts is not None, "the flows subsystem has not started"
        return self._parts

    def service(self) -> FlowService:
        return self.parts.service

    async def start(
        self,
        core: DelegationCore,
        federation: Callable[[], McpFederation],
        desk: ApprovalDesk,
        replicas: ReplicaDirectory,
        stack: contextlib.AsyncExitStack,
    ) -> FlowParts:
        settings = core.settings
        store = FlowStore(core.engine)
        stack.push_async_callback(store.aclose)
        runtime = FlowRuntime(
            store=store,
            tasks=core.tasks,
            approvals=core.approvals,
            settings=_flow_settings(settings),
            front_door=self._a2a.front_door_parts,
            handler_for=self._a2a.handler_for,
            federation=federation,
        )
        engine = _flow_engine(settings, runtime, replicas)
        # Also for `local`: the file may hold the runs of workers it had before.
        takeover = RunTakeover(engine, store, replicas)
        stack.push_async_callback(engine.stop)
        service = FlowService(runtime, engine, settings.effective_public_url)
        _hear_approvals(desk, engine)
        retention = RunRetention(
            core.engine,
            store,
            engine,
            default_days=settings.flow_run_retention_days,
            interval_seconds=settings.flow_retention_interval_seconds,
            unstarted=lambda run: runtime.publish(
                run, "failed", "the fork did not start: the gateway stopped while forking"
            ),
        )
        triggers = FlowTriggers(
            service, core.engine, interval_seconds=settings.flow_trigger_sweep_seconds
        )
        core.tasks.ended_listeners.append(triggers.on_ended)
        service.registered_listeners.append(triggers.forget)
        # A task's end also wakes the runs waiting on it (`wait: {task: ...}`).
        wake_ups = TaskWakeUps(runtime, core.engine, lambda: engine.launched)
        core.tasks.ended_listeners.append(wake_ups.on_ended)
        core.tasks.state_listeners.append(wake_ups.on_state)
        service.registered_listeners.append(wake_ups.forget)
        _install_schedules(service, stack)
        self._parts = FlowParts(service, engine, takeover, retention, triggers)
        if await store.any():
            # Read before DBOS launches: its scheduler then fires new ticks.
            fired = await schedule_catch_up.last_fired(service, settings.effective_database_url)
            await engine.ensure()
            await schedules.sync(service)
            await schedule_catch_up.catch_up(service, fired)
        return self._parts


def _flow_settings(settings: Settings) -> FlowSettings:
    return FlowSettings(
        grant_max_seconds=settings.flow_grant_max_seconds,
        checkpoint_poll_seconds=settings.flow_checkpoint_poll_seconds,
        consent_timeout_seconds=settings.flow_consent_timeout_seconds,
        secrets=settings.secrets,
        retry_backoff_seconds=settings.flow_retry_backoff_seconds,
        retry_backoff_max_seconds=settings.flow_retry_backoff_max_seconds,
        max_json_depth=settings.max_json_depth,
    )


def _flow_engine(
    settings: Settings, runtime: FlowRuntime, replicas: ReplicaDirectory
) -> FlowEngine:
    # Several replicas share a PostgreSQL database, and the workers of
    # `serve --workers` an SQLite file: each runs its runs under its own
    # executor id and takes over those of replicas gone. An SQLite file of
    # one process is DBOS's `local`, recovered at each start.
    postgresql = make_url(settings.effective_database_url).get_backend_name() == "postgresql"
    shared = postgresql or settings.workers > 1
    return FlowEngine(
        settings.effective_database_url,
        runtime,
        executor_id=replicas.id if shared else "local",
        # One process: every message is sent here and wakes its run at
        # once (`flows.mailbox`); the poll is only a net then.
        notification_poll_seconds=(
            settings.flow_wake_poll_seconds if shared else mailbox.LONE_PROCESS_POLL_SECONDS
        ),
        alone=replicas.alone,
        pool_size=settings.database_pools()[1],
    )


def _hear_approvals(desk: ApprovalDesk, engine: FlowEngine) -> None:
    """A decision wakes the run whose checkpoint waits for it; a held call
    shows on the step whose agent made it onwards."""

    async def decided(approval: Approval) -> None:
        if approval.kind == "flow" and engine.launched:
            await checkpoints.notify(approval)
        # Any kind: a step may wait on a call its agent made onwards.
        deep_approvals.decided(approval.id)

    desk.listeners.append(decided)
    desk.approvals.held_listeners.append(deep_approvals.held_now)


def _install_schedules(service: FlowService, stack: contextlib.AsyncExitStack) -> None:
    """The flows' schedules fire through ``service`` until the app stops, and
    follow each flow registered."""

    async def schedules_match() -> None:
        await schedules.sync(service)

    schedules.install(service)
    stack.callback(schedules.install, None)
    service.registered_hooks.append(schedules_match)
