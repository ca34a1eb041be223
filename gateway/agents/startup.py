"""The agents' start-up: the handlers that call registered agents (built
with the app) and the parts they work with (built by `start()` in the app's
lifespan). Every door that reaches an agent -- the A2A door, `/mcp`'s agent
tools, flows -- reaches it through these.

The SDK's routes need their handlers when the app is created, before the
lifespan has opened the database; so each handler is given an accessor
(`Agents.front_door_parts`, ...) that it calls per request.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.a2a import A2AUpstreams
from adapters.http import UpstreamHTTP
from gateway.agents.admission import FrontDoorParts, StreamLimits
from gateway.agents.approval_handler import ApprovalAgentHandler
from gateway.agents.approvals import ApprovalDesk, ApprovalParts
from gateway.agents.approved import ApprovalExecution
from gateway.agents.consents import SWEEP_SECONDS, AgentConsents
from gateway.agents.exchange import OperationsHandler
from gateway.agents.gateway_run import GatewayRunHandlers
from gateway.agents.handler import AgentHandler
from gateway.agents.reconcile import Reconciler
from gateway.agents.vendor import GatewayRun, VendorAgentHandler
from gateway.agents.vendor_run import VendorExecution
from gateway.delegation.deferrals import Deferrals
from gateway.delegation.lost_tasks import LostTasks
from gateway.delegation.startup import DelegationCore, Job
from gateway.delegation.task_runner import TaskRunner
from gateway.delegation.task_takeover import TaskTakeover
from gateway.delegation.vendor_agents import VendorAgents
from gateway.settings.grpc import grpc_public_target
from gateway.storage.periodic import Pace
from gateway.storage.replicas import ReplicaDirectory
from registry.vendor_store import SqlVendorStore


@dataclass(frozen=True)
class A2AParts:
    front_door: FrontDoorParts
    gateway_run: GatewayRun
    takeover: TaskTakeover
    desk: ApprovalDesk
    reconciler: Reconciler

    def jobs(self) -> list[Job]:
        takeover = self.takeover
        consents = self._consents_pace()
        jobs: list[Job] = [
            takeover.job(),
            self.front_door.lost.pace.periodic("a2a-reconciler", self.reconciler.tick),
            # Calls held for a user's consent (`gateway.agents.consents`).
            consents.periodic("consent-waits", self.desk.sweep_consents),
        ]
        paces = [self.front_door.lost.pace, consents]
        deferrals = self.desk.parts.deferrals
        if deferrals is not None and deferrals.coordination is not None:
            desk = self.desk
            jobs.append(
                deferrals.pace.periodic(
                    "coordination-deferrals",
                    functools.partial(deferrals.tick, desk.release, desk.give_up),
                )
            )
            paces.append(deferrals.pace)
        replicas = takeover.replicas
        for pace in paces:  # what another replica kept is looked for rarely while none runs
            pace.alone_when(replicas.alone, replicas.on_others)
        return jobs

    def _consents_pace(self) -> Pace:
        consents = self.front_door.consents
        return consents.pace if consents is not None else Pace(SWEEP_SECONDS, SWEEP_SECONDS)


class Agents:
    """Every handler that calls a registered agent, and what they work with."""

    def __init__(self, version: str) -> None:
        self.version = version
        self._parts: A2AParts | None = None
        self.handler = AgentHandler(self.front_door_parts)
        self.vendor = VendorAgentHandler(self.front_door_parts, self.gateway_run)
        # Gateway-run agents by kind: the vendor agents, and what a layer above
        # adds (flows) before the A2A door's routes are made.
        self.gateway_runs = GatewayRunHandlers(self.vendor)
        self.approvals = ApprovalAgentHandler(self.front_door_parts, self.approval_parts)
        self.handler.held = self.approvals  # deferred calls' tasks

    @property
    def parts(self) -> A2AParts:
        assert self._parts is not None, "the agents have not started"
        return self._parts

    def front_door_parts(self) -> FrontDoorParts:
        return self.parts.front_door

    def gateway_run(self) -> GatewayRun:
        return self.parts.gateway_run

    def approval_parts(self) -> ApprovalParts:
        return self.parts.desk.parts

    def handler_for(self, card: Mapping[str, Any]) -> OperationsHandler:
        """The handler that serves the agent with this (stored) card."""
        return self.gateway_runs.pick(card) if self.gateway_runs.serves(card) else self.handler

    async def start(
        self,
        core: DelegationCore,
        replicas: ReplicaDirectory,
        stack: contextlib.AsyncExitStack,
    ) -> A2AParts:
        settings = core.settings
        front_door = _front_door(core, self.version, stack)
        vendors = _vendor_agents(core, stack)

        if front_door.consents is not None:
            front_door.consents.vendors = vendors.user_oauth_upstream

        async def idempotent(agent_id: str, skill: str | None) -> bool:
            call = await vendors.store.get(agent_id)
            return call is not None and any(
                s.id == skill and s.idempotent for s in call.config.skills
            )

        # One runner for every gateway-run task: vendor calls, and approved calls.
        # A vendor agent's call cannot be resumed (an OpenAI-compatible or REST
        # upstream has no task to ask about): taken over, it runs again if its
        # skill is idempotent, else fails. An approved A2A call whose agent
        # named its task is followed there instead.
        approved = ApprovalExecution(
            lambda: front_door,
            core.approvals,
            self.handler_for,
            lambda spec, grant, event: runner.sending(spec, grant, event),
        )
        execute = approved.dispatching(VendorExecution(lambda: front_door, self.gateway_run))
        runner = TaskRunner(core.engine, core.tasks, lambda: execute, replicas=replicas)
        takeover = TaskTakeover(
            core.engine,
            runner,
            replicas,
            poll_seconds=settings.gateway_run_poll_seconds,
            idempotent=idempotent,
            resumable=approved.resumable,
            audit=core.delegations.audit,
        )
        # Before the pool closes and the replica withdraws its row (announced
        # before this), after the takeover's job stops.
        stack.push_async_callback(runner.aclose)
        deferrals = Deferrals(
            core.engine, core.delegations.coordination, core.approvals, core.delegations.policy
        )
        self._parts = A2AParts(
            front_door=front_door,
            gateway_run=GatewayRun(vendors, runner),
            takeover=takeover,
            desk=ApprovalDesk(lambda: front_door, ApprovalParts(core.approvals, runner, deferrals)),
            reconciler=Reconciler(
                lambda: front_door,
                self.handler,
                poll_seconds=settings.a2a_reconcile_poll_seconds,
                limit_seconds=settings.a2a_reconcile_max_seconds,
            ),
        )
        return self._parts


def _front_door(
    core: DelegationCore, version: str, stack: contextlib.AsyncExitStack
) -> FrontDoorParts:
    """What every handler calling a registered agent works with."""
    settings = core.settings
    upstreams = A2AUpstreams(
        core.fetcher,
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
        stream_idle_seconds=settings.stream_idle_seconds,
        max_response_bytes=settings.upstream_max_bytes,
        max_stream_bytes=settings.stream_max_bytes,
    )
    stack.push_async_callback(upstreams.aclose)
    return FrontDoorParts(
        delegations=core.delegations,
        tasks=core.tasks,
        upstreams=upstreams,
        default_timeout_seconds=settings.upstream_timeout_seconds,
        stream_limits=StreamLimits(max_seconds=settings.stream_max_seconds),
        signing_key=core.keys.active_key,
        public_url=settings.effective_public_url,
        token_endpoint=settings.token_endpoint,
        version=version,
        fetcher=core.fetcher,
        push=core.push,
        resilience=core.resilience,
        delegate=core.delegate,
        lost=LostTasks(core.engine, settings.a2a_reconcile_poll_seconds),
        grpc_target=grpc_public_target(settings, settings.effective_public_url, settings.host),
        consents=AgentConsents(core.engine),
    )


def _vendor_agents(core: DelegationCore, stack: contextlib.AsyncExitStack) -> VendorAgents:
    """The gateway-run vendor agents, with their own HTTP client."""
    settings = core.settings
    vendor_http = UpstreamHTTP(
        core.fetcher.policy,
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
        idle_timeout_seconds=settings.stream_idle_seconds,
        max_response_bytes=settings.upstream_max_bytes,
        max_stream_bytes=settings.stream_max_bytes,
    )
    stack.push_async_callback(vendor_http.aclose)
    return VendorAgents(
        SqlVendorStore(core.engine, core.agents),
        core.agents,
        vendor_http,
        public_url=settings.effective_public_url,
        sealing_secret=settings.sealing_secret,
        secrets=settings.secrets,
        dev=settings.dev,
    )
