"""What the federation serves and refuses: federated tools, their errors, how an
upstream failure counts for retries, and the records a registration becomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from adapters.mcp import (
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.delegation import retry
from registry.mcp_models import (
    McpServerRecord,
    McpServerView,
    McpToolView,
    ToolState,
)
from registry.mcp_store import (
    McpServerConfig,
    NewMcpServer,
    StoredTool,
)

AUDIT_EVENT = "mcp"
SNAPSHOT_SECONDS = 1.0  # how long a replica may serve a tool list another replica changed
MAX_SLUG_ATTEMPTS = 50
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"


class RegistrationRefused(Exception):
    """The caller may not register this server (e.g. stdio without admin)."""


class CommandNotAllowed(Exception):
    """The stdio command is not on the operator's allowlist."""


class ToolNotFound(Exception):
    pass


class ToolQuarantined(Exception):
    """The tool's definition is not the approved one (or was never approved)."""

    def __init__(self, tool: FederatedTool) -> None:
        if not tool.available:
            reason = f"{tool.name} is no longer offered by its server"
        elif tool.state is ToolState.QUARANTINED:
            reason = (
                f"{tool.name} changed upstream since it was approved and is quarantined "
                "until an admin approves the new definition"
            )
        else:
            flagged = f" (flagged: {', '.join(sorted({f['kind'] for f in tool.flags}))})"
            reason = f"{tool.name} awaits an admin's approval" + (flagged if tool.flags else "")
        super().__init__(reason)
        self.tool = tool


@dataclass(frozen=True)
class FederatedTool:
    """One upstream tool as the gateway offers it."""

    name: str  # the namespaced name callers use
    server_id: str
    upstream_name: str
    definition: Mapping[str, Any]  # the upstream's definition (MCP JSON, camelCase)
    state: ToolState
    flags: tuple[Mapping[str, str], ...]
    available: bool
    digest: str

    @property
    def callable(self) -> bool:
        return self.available and self.state is ToolState.APPROVED

    def as_mcp_tool(self) -> types.Tool:
        """The definition under its federated name, for a `tools/list` answer."""
        return types.Tool.model_validate({**self.definition, "name": self.name})

    @classmethod
    def of(cls, stored: StoredTool) -> FederatedTool:
        return cls(
            name=stored.namespaced,
            server_id=stored.server_id,
            upstream_name=stored.name,
            definition=stored.definition,
            state=stored.state,
            flags=stored.flags,
            available=stored.available,
            digest=stored.digest,
        )


def classify_failure(exc: BaseException) -> retry.Failure:
    """An MCP upstream's failures, for retries: a timeout is transient, a lost
    or missing connection unreached; a JSON-RPC error is an answer."""
    if isinstance(exc, UpstreamTimeout):
        return retry.Failure.TRANSIENT
    if isinstance(exc, UpstreamUnavailable):
        return retry.Failure.UNREACHED
    return retry.Failure.ANSWERED


def counts_for_breaker(failure: retry.Failure) -> bool:
    # The breaker counts timeouts only: a lost connection is the upstream
    # connection's business, which reconnects with its own backoff (and a
    # call meanwhile fails at once, without the breaker's help).
    return failure is retry.Failure.TRANSIENT


def noted(exc: Exception, attempts: retry.Attempts) -> str:
    return f"{exc}; after {attempts.made} attempts" if attempts.made > 1 else str(exc)


def config_of(new: NewMcpServer) -> McpServerConfig:
    command = new.command or {}
    return McpServerConfig(
        id=new.id,
        transport=new.transport,
        url=new.url,
        command=command.get("command"),
        args=tuple(command.get("args") or ()),
        resource=new.resource,
        timeout_seconds=new.timeout_seconds,
        credential=new.credential,
        credential_secret=new.credential_secret,
        version="",
        trusted_registrant=new.trusted_registrant,
    )


def view_of(record: McpServerRecord, tools: Sequence[FederatedTool]) -> McpServerView:
    return McpServerView(
        id=record.id,
        name=record.name,
        transport=record.transport,
        health=record.health.model_copy(update={"detail": None}),
        server_info=record.server_info,
        protocol_version=record.protocol_version,
        tools_refreshed_at=record.tools_refreshed_at,
        tools=[
            McpToolView(name=t.upstream_name, namespaced=t.name, definition=dict(t.definition))
            for t in tools
        ],
    )


def restamped(
    result: types.CallToolResult | types.InputRequiredResult,
) -> types.CallToolResult | types.InputRequiredResult:
    """Drop the upstream's identity stamp: the front end stamps the gateway's own."""
    meta = result.meta
    if meta and SERVER_INFO_META_KEY in meta:
        cleaned = {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}
        return result.model_copy(update={"meta": cleaned or None})
    return result
