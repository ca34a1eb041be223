"""The MCP federation: upstream MCP servers' tools, namespaced, pinned, permissioned.

Two faces:

* the registry API (`register`, `refresh`, `approve`, `remove`, and `shown`
  for reads), used by `gateway/api/mcp_servers.py`: `McpServers`
  (`gateway.federation.servers`), over this federation;
* the Python API the gateway's MCP front end uses: `tools()` and
  `call_tool()`. A call runs the one delegation pipeline: the MCP server is a
  policy target like an agent (``agents.<server id>.tools.<tool name>`` in the
  policy file), `Delegations.admit_target()` decides and mints, the upstream
  gets the credential configured for it (never the caller's token), and the
  outcome is audited (event ``mcp``), also when the call is refused.

A tool is callable only while its definition hashes to the approved digest
(`registry.mcp_tools`); otherwise the call fails with `ToolQuarantined`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from adapters.mcp import McpUpstream, UpstreamUnavailable
from adapters.mcp_relay import CallRelay
from adapters.openapi import OpenApiUpstream
from adapters.trace_context import new_trace_id
from gateway.delegation.delegate import Delegate
from gateway.delegation.permits import Permit
from gateway.delegation.pipeline import Caller, Delegations
from gateway.delegation.resilience import Resilience
from gateway.federation.catalog import Server, ToolCatalog
from gateway.federation.credential_checks import UsersOwnChecks
from gateway.federation.credentials import CallCredential, UpstreamCredentials
from gateway.federation.federated_tools import (
    AUDIT_EVENT,
    SNAPSHOT_SECONDS,
    FederatedTool,
    ToolNotFound,
    ToolQuarantined,
    restamped,
)

# `probe` lists an MCP server's tools, or reads a REST API's from its document.
from gateway.federation.upstream_call import tool_sending
from gateway.federation.upstreams import McpUpstreams
from gateway.storage.outages import outage_of
from policies.policy import Target, handoff
from registry.fetch import SafeFetcher
from registry.mcp_store import (
    McpServerConfig,
    SqlMcpStore,
)


@dataclass(frozen=True)
class FederationSettings:
    stdio_commands: tuple[tuple[str, ...], ...]
    auto_approve_new_tools: bool
    sealing_secret: str | None
    connect_timeout_seconds: float
    default_timeout_seconds: float
    # Who may name where users' tokens go (`credential_checks`).
    users_own: UsersOwnChecks = field(default_factory=UsersOwnChecks)


class McpFederation:
    def __init__(
        self,
        store: SqlMcpStore,
        upstreams: McpUpstreams,
        delegations: Delegations,
        fetcher: SafeFetcher,
        settings: FederationSettings,
        resilience: Resilience | None = None,
    ) -> None:
        self.resilience = resilience or Resilience.fresh()
        self.store = store
        self.upstreams = upstreams
        self.delegations = delegations
        self.delegate = Delegate(delegations, self.resilience)
        self._fetcher = fetcher
        self._settings = settings
        self.catalog = ToolCatalog(store)
        self._configs: tuple[float, list[McpServerConfig]] | None = None
        # Told (synchronously, on the event loop) whenever the tools may have
        # changed: the MCP front end sends tools/list_changed from here.
        self.listeners: list[Callable[[], None]] = []

    # --- The front end's API --------------------------------------------------------

    async def tools(
        self,
        caller: Caller | None = None,
        *,
        include_uncallable: bool = False,
        snapshot: Mapping[str, FederatedTool] | None = None,
    ) -> list[FederatedTool]:
        """The federated tools (of ``snapshot``, or current): a ``caller``'s, those it may
        call (`call_tool`'s decision); only callable ones unless ``include_uncallable``."""
        tools = snapshot if snapshot is not None else (await self._current())[0]
        return [
            tool
            for tool in tools.values()
            if (include_uncallable or tool.callable)
            and (caller is None or self.may_call(caller, tool))
        ]

    async def snapshot(self) -> Mapping[str, FederatedTool]:
        """The tools as last read (replaced, never changed, by a new read): what
        a listing worked out from them can be kept while it is the current one."""
        tools, _ = await self._current()
        return tools

    async def tool(self, name: str) -> FederatedTool:
        tools, _ = await self._current()
        found = tools.get(name)
        if found is None:
            raise ToolNotFound(name)
        return found

    def known_tool(self, name: str) -> FederatedTool | None:
        """The tool as last read, without I/O (for synchronous SDK hooks such as
        input-schema lookups; never for a decision)."""
        return self.catalog.tools.get(name)

    def known_tools(self) -> list[FederatedTool]:
        """Every tool as last read, without I/O (see `known_tool`)."""
        return list(self.catalog.tools.values())

    def may_call(self, caller: Caller, tool: FederatedTool) -> bool:
        """What `call_tool` will let through (a tool that needs a human's
        approval is callable: the call is held for an admin, `gateway.mcp.approvals`)."""
        decision = self.delegations.decide(
            caller, Target(tool.server_id), tool.upstream_name, "tool"
        )
        return decision.allowed

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        caller: Caller,
        trace_id: str | None = None,
        progress_callback: ProgressFnT | None = None,
        input_responses: types.InputResponses | None = None,
        request_state: str | None = None,
        approved: bool = False,
        relay: CallRelay | None = None,
        legacy: bool = False,
        user_token: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Call a federated tool on ``caller``'s behalf (``approved``: an admin
        approved this very call, `gateway.mcp.approvals`; ``relay`` and
        ``legacy``: `McpUpstream.call_tool`; ``user_token``: the bearer token
        the caller's request came with, for a server that exchanges it at
        the user's identity provider -- it goes nowhere else).

        Raises `ToolNotFound`, `DelegationDenied` / `ApprovalRequired` (the
        policy), `ToolQuarantined`, `UpstreamUnavailable` / `UpstreamTimeout`
        (the server) and `UpstreamError` (the server answered with a JSON-RPC
        error). A tool's own failure is a result with ``isError``.
        """
        trace_id = trace_id or new_trace_id()
        tool, server = await self._named(name)
        # 1. The policy decides and mints (denials are audited there).
        permit = await self.delegations.admit_target(
            caller,
            Target(tool.server_id),
            server.resource,
            event=AUDIT_EVENT,
            trace_id=trace_id,
            action=tool.upstream_name,
            kind="tool",
            approved=approved,
            inputs=[arguments or {}],
        )
        # 2. Only the approved definition may be called.
        await self._only_approved(tool, permit)
        # 3. The upstream, with the credential configured for it.
        upstream, credentials = await self._connected(tool, permit)
        # 4. Through the core: the server's breaker, retries if idempotent, recorded (cancels too).
        sending = tool_sending(
            upstream,
            tool,
            CallCredential(credentials, permit, user_token),
            arguments,
            timeout=server.timeout_seconds or self._settings.default_timeout_seconds,
            idempotent=self._idempotent(tool),
            progress_callback=progress_callback,
            input_responses=input_responses,
            request_state=request_state,
            relay=relay,
            legacy=legacy,
        )
        return restamped(await self.delegate.send(permit, AUDIT_EVENT, sending))

    async def _named(self, name: str) -> tuple[FederatedTool, Server]:
        tools, servers = await self._current()
        tool = tools.get(name)
        server = servers.get(tool.server_id) if tool else None
        if tool is None or tool.withheld is not None or server is None:
            raise ToolNotFound(name)  # a withheld tool holds a name that is not its own
        return tool, server

    async def _only_approved(self, tool: FederatedTool, permit: Permit) -> None:
        if not tool.callable:
            refusal = ToolQuarantined(tool)
            await self.delegate.record(permit, AUDIT_EVENT, "quarantined", str(refusal))
            raise refusal

    async def _connected(
        self, tool: FederatedTool, permit: Permit
    ) -> tuple[McpUpstream | OpenApiUpstream, UpstreamCredentials]:
        """The upstream serving ``tool``, ready (or not connected: recorded, raised)."""
        live = self.upstreams.tools_of(tool.server_id)
        if live is None:
            detail = f"MCP server {tool.server_id} is not connected yet"
            await self.delegate.record(permit, AUDIT_EVENT, "upstream_error", detail)
            raise UpstreamUnavailable(detail)
        upstream, credentials = live
        await upstream.wait_ready(self._settings.connect_timeout_seconds)
        failure = upstream.own_failure
        if not upstream.ready and failure and (outage := outage_of(failure)) is not None:
            # Not connected because the gateway's own part failed (its
            # database down): that outage is the answer, not the server.
            raise outage
        return upstream, credentials

    def _idempotent(self, tool: FederatedTool) -> bool:
        """The policy's `idempotent` for the tool, else the tool's own
        `idempotentHint` (part of the definition an admin approved)."""
        rules = handoff(self.delegations.policy.current, tool.server_id, "tool", tool.upstream_name)
        if rules.idempotent is not None:
            return rules.idempotent
        annotations = tool.definition.get("annotations")
        return isinstance(annotations, Mapping) and annotations.get("idempotentHint") is True

    async def server_configs(self) -> list[McpServerConfig]:
        """The registered servers in registration order (read at most once per
        SNAPSHOT_SECONDS): what resources, prompts and completions route by."""
        now = time.monotonic()
        if self._configs is None or self._configs[0] <= now:
            self._configs = (now + SNAPSHOT_SECONDS, await self.store.configs())
        return self._configs[1]

    @property
    def default_timeout_seconds(self) -> float:
        return self._settings.default_timeout_seconds

    def invalidate(self, server_id: str | None = None) -> None:
        """``server_id``'s rows changed (None: some server's): the next call
        reads the change first (`gateway.federation.catalog`)."""
        self.catalog.changed(server_id)
        self._configs = None
        for listener in self.listeners:
            listener()

    # --- Helpers ---------------------------------------------------------------------------

    async def _current(self) -> tuple[Mapping[str, FederatedTool], Mapping[str, Server]]:
        # A change made on another replica (an approval, a refresh) is seen
        # within SNAPSHOT_SECONDS (plus one read of the servers' versions).
        return await self.catalog.current()
