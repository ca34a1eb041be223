"""What the running app holds: built once in the lifespan, read by routers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditLog
from gateway.keystore import KeyStore
from gateway.pipeline import Delegations
from gateway.settings import Settings
from gateway.token_exchange import TokenExchange
from policies.tokens import TokenVerifier
from registry.credentials import SqlCredentialStore
from registry.fetch import SafeFetcher
from registry.health import HealthChecker
from registry.service import RegistryService
from registry.store import SqlAgentStore

if TYPE_CHECKING:
    from gateway.a2a_approvals import ApprovalDesk
    from gateway.a2a_front import FrontDoorParts
    from gateway.a2a_vendor import GatewayRun
    from gateway.mcp_federation import McpFederation
    from gateway.vendor_agents import VendorAgents


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
