"""The flows subsystem's start-up: the flow agents' handler (built with the
app, before the routes) and the parts it works with (built in the lifespan).

The engine (DBOS) is launched here when a flow is already stored -- which
also takes up the runs a previous process left unfinished -- else by the first
registration. The approvals desk tells the engine of every decision, which
wakes a run waiting at that checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from gateway.a2a.approvals import ApprovalDesk
from gateway.a2a.startup import A2ADoor
from gateway.delegation.approvals import Approval
from gateway.delegation.startup import DelegationCore
from gateway.flows import checkpoints
from gateway.flows.agent import FlowAgentHandler
from gateway.flows.cards import KIND
from gateway.flows.engine import FlowEngine
from gateway.flows.runtime import FlowRuntime, FlowSettings
from gateway.flows.service import FlowService
from gateway.flows.store import FlowStore
from gateway.mcp.federation import McpFederation


@dataclass(frozen=True)
class FlowParts:
    service: FlowService
    engine: FlowEngine


class FlowsDoor:
    def __init__(self, a2a: A2ADoor) -> None:
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
        stack: contextlib.AsyncExitStack,
    ) -> FlowParts:
        settings = core.settings
        store = FlowStore(core.engine)
        runtime = FlowRuntime(
            store=store,
            tasks=core.tasks,
            approvals=core.approvals,
            settings=FlowSettings(
                grant_max_seconds=settings.flow_grant_max_seconds,
                checkpoint_poll_seconds=settings.flow_checkpoint_poll_seconds,
            ),
            front_door=self._a2a.front_door_parts,
            handler_for=self._a2a.handler_for,
            federation=federation,
        )
        engine = FlowEngine(settings.effective_database_url, runtime)
        stack.push_async_callback(engine.stop)
        service = FlowService(runtime, engine, settings.effective_public_url)

        async def decided(approval: Approval) -> None:
            if approval.kind == "flow" and engine.launched:
                await checkpoints.notify(approval)

        desk.listeners.append(decided)
        self._parts = FlowParts(service, engine)
        if await store.any():
            await engine.ensure()
        return self._parts
