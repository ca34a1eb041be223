"""What the running app holds: built once in the lifespan, read by routers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit import AuditLog
from gateway.delegation.keystore import KeyStore
from gateway.delegation.pipeline import Delegations
from gateway.delegation.token_exchange import TokenExchange
from gateway.settings import Settings
from policies.tokens import TokenVerifier
from registry.credentials import SqlCredentialStore
from registry.fetch import SafeFetcher
from registry.health import HealthChecker
from registry.service import RegistryService
from registry.store import SqlAgentStore

if TYPE_CHECKING:
    from gateway.a2a.admission import FrontDoorParts
    from gateway.a2a.approvals import ApprovalDesk
    from gateway.a2a.vendor import GatewayRun
    from gateway.delegation.vendor_agents import VendorAgents
    from gateway.mcp.federation import McpFederation


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    keys: KeyStore
    verifier: TokenVerifier
    fetcher: SafeFetcher
    agents: SqlAgentStore
    registry: RegistryService
    health: HealthChecker
    credentials: SqlCredentialStore
    audit: AuditLog
    delegations: Delegations
    token_exchange: TokenExchange
    front_door: FrontDoorParts
    mcp: McpFederation
    vendors: VendorAgents
    gateway_run: GatewayRun
    approvals: ApprovalDesk


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.switchboard
    return state
