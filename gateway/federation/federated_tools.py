"""What the federation serves and refuses: federated tools, their errors, how an
upstream failure counts for retries, and the records a registration becomes.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from adapters.mcp import (
    UpstreamError,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from adapters.trace_context import new_trace_id
from gateway.connections.errors import UserCredentialUnavailable
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.delegate import BreakerOpen, Explained, Failure
from gateway.delegation.pipeline import Delegations
from gateway.storage.outages import outage_of
from policies.tokens import Principal
from registry.mcp_models import (
    McpServerRecord,
    McpServerView,
    McpToolView,
    ToolState,
)
from registry.mcp_names import withheld
from registry.mcp_offerings import app_tool_meta
from registry.mcp_rows import McpServerConfig, StoredTool
from registry.mcp_store import NewMcpServer

AUDIT_EVENT = "mcp"
NAMES_EVENT = "mcp.names"  # a name refused at registration, refresh or approval
SNAPSHOT_SECONDS = 1.0  # how long a replica may serve a tool list another replica changed
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"


class RegistrationRefused(Exception):
    """The caller may not register this server (e.g. stdio without admin)."""


class CommandNotAllowed(Exception):
    """The stdio command is not on the operator's allowlist."""


class ToolNotFound(Exception):
    pass


class NotSent(Exception):
    """An admitted call its caller could not get ready to send (a flow step's
    record of sending could not be written): ended unsent, recorded."""


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
    # Why the tool may not be offered under ``name`` (`registry.mcp_names.withheld`):
    # a row stored before names were checked. Such a tool claims no name.
    withheld: str | None = None

    @property
    def callable(self) -> bool:
        return self.available and self.state is ToolState.APPROVED and self.withheld is None

    def as_mcp_tool(self) -> types.Tool:
        """The definition under its federated name, for a `tools/list` answer
        (and the MCP App it opens, if any, under the gateway's URI for it):
        one object per tool object, which a listing worked out again after
        another server moved shares (never changed: copied to differ)."""
        return self._mcp_tool

    @functools.cached_property
    def _mcp_tool(self) -> types.Tool:
        definition = {**self.definition, "name": self.name}
        meta = app_tool_meta(self.definition.get("_meta"), self.server_id)
        if meta is not None:
            definition["_meta"] = meta
        return types.Tool.model_validate(definition)

    @classmethod
    def of(cls, stored: StoredTool) -> FederatedTool:
        refusal = withheld(stored.server_id, stored.name, stored.namespaced)
        return cls(
            name=stored.namespaced,
            server_id=stored.server_id,
            upstream_name=stored.name,
            definition=stored.definition,
            state=stored.state,
            flags=stored.flags,
            available=stored.available,
            digest=stored.digest,
            withheld=refusal.reason if refusal is not None else None,
        )


def check_command(allowed: Sequence[Sequence[str]], command: str, args: Sequence[str]) -> None:
    """Raise `CommandNotAllowed` unless the command line is exactly an allowed one."""
    # The whole command line, exactly: a prefix would let an allowed
    # `server-filesystem /srv/shared` take one more argument (`/`), from
    # which the child reads the gateway's own environment and secrets.
    argv = (command, *args)
    if argv in {tuple(line) for line in allowed}:
        return
    raise CommandNotAllowed(
        f"{shlex.join(argv)!r} is not allowed: a stdio command line must be exactly an "
        "entry of the mcp_stdio_commands setting"
    )


# The server is not there to answer (RFC 9110 §15.6.3-5), rather than failing the call.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


def classify_failure(exc: BaseException) -> Failure:
    """An MCP upstream's failures, for retries: a timeout, or a gateway's or
    proxy's 502/503/504 before the server (it may have run the call), is
    transient; a lost or missing connection unreached; a JSON-RPC error --
    or another 5xx, the server failing this call (one caller's input that
    crashes one tool must not open the breaker for every tool) -- an answer."""
    if isinstance(exc, UpstreamServerError):
        return Failure.TRANSIENT if exc.status in UNAVAILABLE_STATUSES else Failure.ANSWERED
    if isinstance(exc, UpstreamTimeout):
        return Failure.TRANSIENT
    if isinstance(exc, UpstreamUnavailable):
        return Failure.UNREACHED
    return Failure.ANSWERED


def counts_for_breaker(failure: Failure) -> bool:
    # The breaker counts timeouts and HTTP server errors only: a lost
    # connection is the upstream connection's business, which reconnects with
    # its own backoff (and a call meanwhile fails at once, without the
    # breaker's help).
    return failure is Failure.TRANSIENT


def explain_failure(server_id: str, exc: BaseException) -> Explained:
    """A failed tool call as the error its caller gets, and its record. A
    dependency outage of the gateway's own (a credential it could not read,
    the session it could not keep for it) is that outage, not the server's."""
    if (outage := outage_of(exc)) is not None:
        return Explained(outage, "dependency_unavailable", str(outage))
    if isinstance(exc, NotSent):
        return Explained(exc, "not_sent", str(exc))
    if isinstance(exc, BreakerOpen):
        return Explained(
            UpstreamUnavailable(f"MCP server {exc}; not called"), "breaker_open", str(exc)
        )
    if isinstance(exc, UpstreamTimeout):
        return Explained(exc, "timeout", str(exc))
    if isinstance(exc, (UpstreamUnavailable, UpstreamError)):
        return Explained(exc, "upstream_error", str(exc))
    if isinstance(exc, UserCredentialUnavailable):  # the server refused the user's own
        return Explained(exc, exc.outcome, exc.reason)
    # e.g. the OAuth token endpoint failed
    return Explained(
        UpstreamUnavailable(f"MCP server {server_id}: {exc}"), "upstream_error", str(exc)
    )


def result_record(result: types.CallToolResult | types.InputRequiredResult) -> tuple[str, str]:
    """A tool's answer's record: its own failure is an answer, not the server's."""
    if isinstance(result, types.InputRequiredResult):
        return "input_required", ""
    return ("tool_error" if result.is_error else "ok"), ""


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
        openapi=command.get("openapi"),
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


async def audit_name_refusal(
    delegations: Delegations, principal: Principal | None, target: str | None, detail: str
) -> None:
    """Record a name refused on /mcp (event ``mcp.names``, decision deny):
    at a registration, an approval (``principal``: who asked), or a refresh
    (None when the gateway's own connection listed the tools)."""
    await delegations.record_event(
        AuditEvent(
            event=NAMES_EVENT,
            trace_id=new_trace_id(),
            subject=principal.subject if principal else "switchboard",
            subject_issuer=principal.issuer if principal else "switchboard",
            decision="deny",
            outcome="name_refused",
            client_id=principal.client_id if principal else None,
            target=target,
            detail=detail,
        )
    )


async def audit_kept_out(
    delegations: Delegations,
    server_id: str,
    kept_out: Mapping[str, str],
    principal: Principal | None,
) -> None:
    """Audit the new tools a listing brought that were kept out of their names."""
    for name, why in kept_out.items():
        await audit_name_refusal(delegations, principal, server_id, f"{name} kept out: {why}")
