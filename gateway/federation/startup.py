"""The MCP federation's start-up: the live upstream connections and the
federation over them (`gateway.mcp.front` serves it at `/mcp`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.mcp import UpstreamTimings
from adapters.mcp_http import NoUpstreamAuth
from adapters.trace_context import new_trace_id
from gateway.connections.connection import Connection
from gateway.connections.service import Connections
from gateway.connections.vault import Vault
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.startup import DelegationCore, Job
from gateway.federation.credential_checks import UsersOwnChecks
from gateway.federation.federated_tools import audit_kept_out
from gateway.federation.federation import FederationSettings, McpFederation
from gateway.federation.servers import McpServers
from gateway.federation.upstreams import McpUpstreams, UpstreamLimits
from gateway.settings import Settings


@dataclass(frozen=True)
class McpParts:
    federation: McpFederation
    connections: Connections
    servers: McpServers

    def jobs(self) -> list[Job]:
        return [self.federation.upstreams.reconciler]


async def start(core: DelegationCore, stack: contextlib.AsyncExitStack) -> McpParts:
    settings = core.settings
    federation: McpFederation | None = None

    def tools_changed(server_id: str) -> None:
        if federation is not None:
            federation.invalidate(server_id)

    upstreams = _upstreams(core, tools_changed)
    stack.push_async_callback(upstreams.aclose)  # after the reconciler task is cancelled
    upstreams.connections = connections = _connections(core, upstreams, stack)
    upstreams.auto_approve_first_listing = settings.mcp_auto_approve_new_tools
    federation_settings = _federation_settings(settings)
    federation = McpFederation(
        core.mcp_servers,
        upstreams,
        core.delegations,
        core.fetcher,
        federation_settings,
        core.resilience,
    )
    stack.push_async_callback(federation.catalog.close)  # its read in the background, if any

    async def kept_out(server_id: str, names: Mapping[str, str]) -> None:
        # Audited: what a listing brought that could not have its name.
        await audit_kept_out(core.delegations, server_id, names, None)

    upstreams.on_kept_out = kept_out
    servers = McpServers(federation, core.fetcher, federation_settings)
    return McpParts(federation, connections, servers)


def _upstreams(core: DelegationCore, tools_changed: Callable[[str], None]) -> McpUpstreams:
    """The live connections to the registered MCP servers."""
    settings = core.settings
    return McpUpstreams(
        core.mcp_servers,
        core.fetcher.policy,
        core.minter,
        secret=settings.sealing_secret,
        limits=UpstreamLimits(
            connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
            call_timeout_seconds=settings.upstream_timeout_seconds,
            max_response_bytes=settings.upstream_max_bytes,
        ),
        timings=UpstreamTimings(
            connect_seconds=settings.mcp_connect_timeout_seconds,
            probe_seconds=settings.mcp_probe_seconds,
            call_seconds=settings.upstream_timeout_seconds,
            reconnect_max_seconds=settings.mcp_reconnect_max_seconds,
        ),
        reconcile_seconds=settings.mcp_reconcile_seconds,
        on_change=tools_changed,
        passthrough=settings.mcp_passthrough,
    )


def _connections(
    core: DelegationCore, upstreams: McpUpstreams, stack: contextlib.AsyncExitStack
) -> Connections:
    """Users' connected accounts, each event of theirs audited."""
    settings = core.settings
    # Connected accounts (`user_oauth` servers): their OAuth requests go
    # through an SSRF-checked client of their own that never carries a
    # call's credential. Authorization servers on plain http: --dev only.
    oauth_http = upstreams.http(NoUpstreamAuth())
    stack.push_async_callback(oauth_http.aclose)
    connections = Connections(
        Vault(core.engine, settings.sealing_secret),
        oauth_http,
        settings.effective_public_url,
        allow_http=settings.dev,
    )

    async def connection_event(
        event: str, connection: Connection, outcome: str, detail: str
    ) -> None:
        await core.delegations.record_event(
            AuditEvent(
                event=event,
                trace_id=new_trace_id(),
                subject=connection.subject,
                subject_issuer=connection.issuer,
                decision="allow",
                outcome=outcome,
                target=connection.upstream,
                detail=f"connection {connection.id}: {detail}"[:500],
            )
        )

    connections.on_event = connection_event
    return connections


def _federation_settings(settings: Settings) -> FederationSettings:
    return FederationSettings(
        stdio_commands=settings.stdio_command_lines,
        auto_approve_new_tools=settings.mcp_auto_approve_new_tools,
        sealing_secret=settings.sealing_secret,
        connect_timeout_seconds=settings.mcp_connect_timeout_seconds,
        default_timeout_seconds=settings.upstream_timeout_seconds,
        users_own=UsersOwnChecks(
            trusted_issuers=tuple(issuer.issuer for issuer in settings.trusted_issuers),
            allow_http=settings.dev,
        ),
    )
