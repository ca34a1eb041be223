"""What the running app holds: built once in the lifespan, read by routers."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.keystore import KeyStore
from gateway.settings import Settings
from policies.tokens import TokenVerifier
from registry.fetch import SafeFetcher
from registry.health import HealthChecker
from registry.service import RegistryService
from registry.store import SqlAgentStore


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


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.switchboard
    return state
