"""The MCP federation: upstream MCP servers' tools, namespaced, pinned, permissioned.

Two faces:

* the registry API (`register`, `refresh`, `approve`, `remove`, and `shown`
  for reads), used by `gateway/api/mcp_servers.py`;
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from adapters.mcp import McpUpstream, UpstreamUnavailable
from adapters.mcp_relay import CallRelay
from adapters.openapi import OpenApiUpstream
from adapters.trace_context import new_trace_id
from gateway.delegation.delegate import Delegate
from gateway.delegation.handoffs import Resilience
from gateway.delegation.permits import Permit
from gateway.delegation.pipeline import Caller, Delegations
from gateway.federation.catalog import Server, ToolCatalog
from gateway.federation.credential_checks import UsersOwnChecks
from gateway.federation.credentials import CallCredential, UpstreamCredentials
from gateway.federation.federated_tools import (
    AUDIT_EVENT,
    SNAPSHOT_SECONDS,
    FederatedTool,
    ToolNotFound,
    ToolQuarantined,
    audit_kept_out,
    audit_name_refusal,
    config_of,
    restamped,
    view_of,
)

# `probe` lists an MCP server's tools, or reads a REST API's from its document.
from gateway.federation.openapi_source import load_api, probe
from gateway.federation.probe import record_first_health
from gateway.federation.registration import check_registration, new_server
from gateway.federation.upstream_call import tool_sending
from gateway.federation.upstreams import McpUpstreams
from gateway.storage.outages import outage_of
from policies.policy import Target, handoff
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.fetch import SafeFetcher
from registry.mcp_models import (
    McpServerRecord,
    McpServerView,
    McpToolRecord,
    RefreshResult,
)
from registry.mcp_names import SEPARATOR, NameConflict, reserved_id
from registry.mcp_registration import McpServerRegistration
from registry.mcp_store import (
    McpServerConfig,
    McpServerConflict,
    McpServerNotFound,
    SqlMcpStore,
)
from registry.service import free_slug, slugify


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

    # --- The registry's API ----------------------------------------------------------

    async def register(
        self, registration: McpServerRegistration, principal: Principal
    ) -> McpServerRecord:
        """Check, probe (list the tools once), then store server and tools together."""
        api = None  # a REST API's document, read and checked before anything is stored
        if registration.openapi is not None:
            api = await load_api(registration, self._fetcher)
            registration = registration.model_copy(update={"url": api.base_url})
        admin = principal.has_scope(ADMIN_SCOPE)
        settings = self._settings
        await check_registration(
            registration, admin, self._fetcher, settings.stdio_commands, settings.users_own
        )
        server_id = registration.id or await self._free_slug(registration.name)
        try:  # one name on /mcp, one target: a refusal is audited
            if (refusal := reserved_id(server_id)) is not None:
                raise refusal.error(f"MCP server {server_id}")
            if registration.id is not None and await self.store.id_taken(server_id):
                raise McpServerConflict(server_id)
            new = new_server(
                registration, server_id, principal, admin, api, settings.sealing_secret
            )
            config = config_of(new)
            credentials = self.upstreams.credentials(config)
            probed = await probe(
                config,
                credentials,
                self.upstreams.http,
                deadline=self._settings.connect_timeout_seconds,
                detect_legacy=registration.detect_legacy,
            )
            new = replace(new, transport=probed.transport or new.transport)  # remembered
            await self.store.create(
                new, probed.tools, auto_approve=self._settings.auto_approve_new_tools and admin
            )
        except (NameConflict, McpServerConflict) as refused:
            await audit_name_refusal(self.delegations, principal, server_id, str(refused))
            raise
        await record_first_health(self.store, server_id, probed)
        self.invalidate(server_id)
        await self.upstreams.wake_and_wait()
        live = self.upstreams.tools_of(server_id)
        if live is not None:  # so the first call need not wait for the connection
            await live[0].wait_ready(self._settings.connect_timeout_seconds)
        fresh = await self.store.get(server_id)
        assert fresh is not None
        return fresh

    async def refresh(self, server_id: str, principal: Principal | None = None) -> RefreshResult:
        """List the server's tools now; changed definitions are quarantined, new
        ones that cannot have their names kept out (`registry.mcp_sync`)."""
        if await self.store.config(server_id) is None:
            raise McpServerNotFound(server_id)
        live = self.upstreams.tools_of(server_id)
        if live is None:
            await self.upstreams.wake_and_wait()
            live = self.upstreams.tools_of(server_id)
        if live is None or not live[0].ready:
            reason = live[0].last_error if live else None
            raise UpstreamUnavailable(
                f"MCP server {server_id} is not connected" + (f": {reason}" if reason else "")
            )
        tools = await live[0].list_tools()
        result = await self.store.sync_tools(server_id, tools, auto_approve=False)
        self.invalidate(server_id)
        await audit_kept_out(self.delegations, server_id, result.kept_out, principal)
        record = await self.store.get(server_id)
        if record is None:
            raise McpServerNotFound(server_id)
        return RefreshResult(
            added=result.added,
            changed=result.changed,
            removed=result.removed,
            kept_out=result.kept_out,
            server=record,
        )

    async def approve(
        self, server_id: str, tool_name: str, digest: str | None, principal: Principal
    ) -> McpToolRecord:
        try:
            approved = await self.store.approve(server_id, tool_name, digest, principal.subject)
        except NameConflict as refused:
            await audit_name_refusal(self.delegations, principal, server_id, str(refused))
            raise
        self.invalidate(server_id)
        return approved

    async def remove(self, server_id: str) -> bool:
        removed = await self.store.delete(server_id)
        if removed:
            self.invalidate(server_id)
            await self.upstreams.wake_and_wait()
        return removed

    async def shown(
        self, principal: Principal, records: Sequence[McpServerRecord]
    ) -> list[McpServerRecord | McpServerView]:
        """What the registry API shows ``principal`` of ``records``: an admin
        every record whole; anyone else each server they may use (`visible`),
        as a view with only the tools their `tools/list` offers them --
        `tools(caller)`, the very decision `call_tool` runs."""
        if principal.has_scope(ADMIN_SCOPE):
            return list(records)
        offered: dict[str, list[FederatedTool]] = {}
        for tool in await self.tools(Caller.user(principal)):
            offered.setdefault(tool.server_id, []).append(tool)
        return [
            view_of(record, offered.get(record.id, []))
            for record in records
            if self.visible(principal, record)
        ]

    def visible(self, principal: Principal, record: McpServerRecord) -> bool:
        """Whether a user may use any tool of the server: what listings show."""
        if principal.has_scope(ADMIN_SCOPE):
            return True
        caller = Caller.user(principal)
        target = Target(record.id)
        return (
            any(
                self.delegations.decide(caller, target, tool.name, "tool").allowed
                for tool in record.tools
            )
            or self.delegations.decide(caller, target, None, "tool").allowed
        )

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

    async def _free_slug(self, name: str) -> str:
        base = slugify(name).replace(SEPARATOR, "-")
        if (found := await free_slug(base, self.store.id_taken)) is None:
            raise McpServerConflict(base)
        return found
