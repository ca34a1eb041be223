"""What the REST API's routers read: built once in the lifespan by `gateway.app`.

It sits in the top layer with the routers (which use every subsystem); no
lower layer reads it. Request authentication reads its own small
`gateway.http.auth.RequestAuth` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.agents.approvals import ApprovalDesk
from gateway.agents.oauth_clients import AgentOAuthClients
from gateway.audit_export.startup import AuditExportParts
from gateway.connections.service import Connections
from gateway.delegation.api_keys import ApiKeys
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import action_event
from gateway.delegation.breaker import Breakers
from gateway.delegation.keystore import KeyStore
from gateway.delegation.pipeline import Delegations
from gateway.delegation.token_exchange import TokenExchange
from gateway.delegation.vendor_agents import VendorAgents
from gateway.federation.federation import McpFederation
from gateway.federation.servers import McpServers
from gateway.flows.service import FlowService
from gateway.mcp.notify import ToolListNotifier
from gateway.mcp.sets import SetCache
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.storage.readiness import Readiness
from policies.tokens import Principal, TokenVerifier
from registry.credentials import SqlCredentialStore
from registry.service import RegistryService
from registry.store import SqlAgentStore


@dataclass(frozen=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    keys: KeyStore
    verifier: TokenVerifier
    api_keys: ApiKeys
    agents: SqlAgentStore
    registry: RegistryService
    credentials: SqlCredentialStore
    audit: AuditLog
    delegations: Delegations
    token_exchange: TokenExchange
    breakers: Breakers
    mcp: McpFederation
    mcp_servers: McpServers
    vendors: VendorAgents
    approvals: ApprovalDesk
    metrics: GatewayMetrics
    readiness: Readiness
    flows: FlowService
    connections: Connections
    agent_clients: AgentOAuthClients
    mcp_sets: SetCache
    # The MCP front's list-changed notices (what is still on its way).
    mcp_notices: ToolListNotifier
    audit_export: AuditExportParts


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.switchboard
    return state


async def audited(
    request: Request,
    principal: Principal,
    event: str,
    target: str | None,
    *,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    """Record what ``principal`` changed through the API (an admin's
    registration, removal, approval; `tests/test_layout.py` checks that every
    admin route that changes something calls this): the console acts through
    these same functions, so its actions are audited once, here."""
    await state_of(request).delegations.record_event(
        action_event(principal, event, target, outcome=outcome, detail=detail),
        durable=True,  # written before the caller hears the change was made
    )
