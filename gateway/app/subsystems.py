"""Each subsystem's own start, in the order they depend on one another, and
what they hand back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.agents.startup import A2AParts
from gateway.app.doors import Doors
from gateway.audit_export import startup as audit_export
from gateway.audit_export.startup import AuditExportParts
from gateway.delegation import startup as delegation
from gateway.delegation.startup import DelegationCore
from gateway.federation import startup as mcp_federation
from gateway.federation.startup import McpParts
from gateway.flows.startup import FlowParts
from gateway.observability import startup as observability
from gateway.observability.startup import ObservabilityParts
from gateway.settings import Settings


@dataclass(frozen=True)
class Subsystems:
    """What each subsystem's own `start()` handed back, in the lifespan."""

    engine: AsyncEngine
    core: DelegationCore
    a2a: A2AParts
    mcp: McpParts
    observed: ObservabilityParts
    exported: AuditExportParts
    flows: FlowParts


async def start_subsystems(
    settings: Settings, engine: AsyncEngine, doors: Doors, stack: contextlib.AsyncExitStack
) -> Subsystems:
    """Each subsystem's own start, the core first: the others are built on it."""
    core = await delegation.start(settings, engine, stack)
    a2a_parts = await doors.handlers.start(core, doors.replicas, stack)
    mcp_parts = await mcp_federation.start(core, stack)
    # Agents that take their users' own tokens get them from the same vault.
    if a2a_parts.front_door.consents is not None:
        a2a_parts.front_door.consents.connections = mcp_parts.connections
    observed = observability.start(settings, core, stack)
    exported = await audit_export.start(settings, core, doors.replicas, stack, observed.metrics)
    flow_parts = await doors.flows.start(
        core, lambda: mcp_parts.federation, a2a_parts.desk, doors.replicas, stack
    )
    flow_parts.service.rt.step_listeners.append(observed.metrics.observe_step)
    return Subsystems(engine, core, a2a_parts, mcp_parts, observed, exported, flow_parts)
