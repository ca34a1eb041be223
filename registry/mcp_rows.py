"""A federated MCP server and its tools as `registry.mcp_store` reads them
back: what a connection to the server needs (`McpServerConfig`), a pinned
tool (`StoredTool`, its state), and the records the admin API shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from registry.mcp_models import (
    CommandInfo,
    CredentialInfo,
    McpHealth,
    McpServerRecord,
    McpToolRecord,
    ToolFlagInfo,
    ToolState,
)
from registry.models import HealthStatus
from registry.tables import as_utc


@dataclass(frozen=True)
class McpServerConfig:
    """What a connection to one server needs; ``version`` changes on every edit."""

    id: str
    transport: str
    url: str | None
    command: str | None
    args: tuple[str, ...]
    resource: str
    timeout_seconds: float | None
    credential: Mapping[str, Any] = field(hash=False)
    credential_secret: str | None = field(repr=False)
    version: str
    trusted_registrant: bool
    # Whether the server's names (tools, prompts, resource URIs) are offered
    # under a prefix; unprefixed ones are kept in registration order.
    prefix: bool = True
    registered_at: datetime | None = None
    # A REST API's tools and how each is called (`registry.openapi_tools`):
    # kept in the `command` column, as {"openapi": ...}; None for MCP servers.
    openapi: Mapping[str, Any] | None = field(default=None, hash=False, repr=False)


@dataclass(frozen=True)
class StoredTool:
    server_id: str
    name: str
    namespaced: str
    definition: Mapping[str, Any] = field(hash=False)
    digest: str
    approved_digest: str | None
    flags: tuple[Mapping[str, str], ...] = field(hash=False)
    available: bool

    @property
    def state(self) -> ToolState:
        return tool_state(self.digest, self.approved_digest)


def tool_state(digest: str, approved_digest: str | None) -> ToolState:
    if approved_digest is None:
        return ToolState.PENDING
    return ToolState.APPROVED if approved_digest == digest else ToolState.QUARANTINED


def config_of(row: RowMapping) -> McpServerConfig:
    command = row["command"] or {}
    return McpServerConfig(
        id=row["id"],
        transport=row["transport"],
        url=row["url"],
        command=command.get("command"),
        args=tuple(command.get("args") or ()),
        resource=row["resource"],
        timeout_seconds=row["timeout_seconds"],
        credential=dict(row["credential"]),
        credential_secret=row["credential_secret"],
        version=as_utc(row["updated_at"]).isoformat(),
        trusted_registrant=bool(row["trusted_registrant"]),
        prefix=bool(row["prefix_tools"]),
        registered_at=as_utc(row["registered_at"]),
        openapi=command.get("openapi"),
    )


def stored_tool(row: RowMapping) -> StoredTool:
    return StoredTool(
        server_id=row["server_id"],
        name=row["name"],
        namespaced=row["namespaced"],
        definition=dict(row["definition"]),
        digest=row["digest"],
        approved_digest=row["approved_digest"],
        flags=tuple(row["flags"] or ()),
        available=bool(row["available"]),
    )


def tool_record(row: RowMapping) -> McpToolRecord:
    state = tool_state(row["digest"], row["approved_digest"])
    return McpToolRecord(
        name=row["name"],
        namespaced=row["namespaced"],
        state=state,
        available=bool(row["available"]),
        digest=row["digest"],
        approved_digest=row["approved_digest"],
        flags=[ToolFlagInfo(**f) for f in row["flags"] or ()],
        definition=dict(row["definition"]),
        approved_definition=(
            dict(row["approved_definition"])
            if row["approved_definition"] is not None and state is ToolState.QUARANTINED
            else None
        ),
        approved_by=row["approved_by"],
        approved_at=as_utc(row["approved_at"]) if row["approved_at"] else None,
        first_seen_at=as_utc(row["first_seen_at"]),
        changed_at=as_utc(row["changed_at"]),
    )


def server_record(row: RowMapping, tools: list[McpToolRecord]) -> McpServerRecord:
    credential = dict(row["credential"])
    command = row["command"]
    return McpServerRecord(
        id=row["id"],
        name=row["name"],
        transport=row["transport"],
        url=row["url"],
        command=CommandInfo(command=command["command"], args=list(command.get("args") or ()))
        if command and "command" in command
        else None,
        resource=row["resource"],
        timeout_seconds=row["timeout_seconds"],
        credential=CredentialInfo(
            **{k: v for k, v in credential.items() if k in CredentialInfo.model_fields},
            secret_set=row["credential_secret"] is not None,
        ),
        prefix_tools=bool(row["prefix_tools"]),
        registered_by=row["registered_by"],
        health=McpHealth(
            status=HealthStatus(row["health_status"]),
            detail=row["health_detail"],
            checked_at=as_utc(row["health_checked_at"]) if row["health_checked_at"] else None,
        ),
        server_info=row["server_info"],
        protocol_version=row["protocol_version"],
        tools_refreshed_at=(
            as_utc(row["tools_refreshed_at"]) if row["tools_refreshed_at"] else None
        ),
        registered_at=as_utc(row["registered_at"]),
        updated_at=as_utc(row["updated_at"]),
        tools=tools,
    )
