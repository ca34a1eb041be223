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

from adapters.mcp import UpstreamUnavailable
from adapters.mcp_relay import CallRelay
from adapters.trace_context import new_trace_id
from gateway.delegation.delegate import Delegate
from gateway.delegation.handoffs import Resilience
from gateway.delegation.pipeline import Caller, Delegations
from gateway.federation import tool_calls
from gateway.federation.catalog import Server, ToolCatalog
from gateway.federation.credential_checks import UsersOwnChecks, check_users_own
from gateway.federation.credentials import stored_form, with_registrant
from gateway.federation.federated_tools import (
    AUDIT_EVENT,
    SNAPSHOT_SECONDS,
    FederatedTool,
    RegistrationRefused,
    ToolNotFound,
    audit_kept_out,
    audit_name_refusal,
    check_command,
    config_of,
    view_of,
)

# `probe` lists an MCP server's tools, or reads a REST API's from its document.
from gateway.federation.openapi_source import load_api, probe
from gateway.federation.probe import record_first_health
from gateway.federation.tool_calls import AdmittedTool
from gateway.federation.upstreams import McpUpstreams
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
    NewMcpServer,
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
        """Call a federated tool on ``caller``'s behalf: `admit_tool`, then
        `send_tool` (``relay`` and ``legacy``: `McpUpstream.call_tool`).

        Raises `ToolNotFound`, `DelegationDenied` / `ApprovalRequired` (the
        policy), `ToolQuarantined`, `UpstreamUnavailable` / `UpstreamTimeout`
        (the server) and `UpstreamError` (the server answered with a JSON-RPC
        error). A tool's own failure is a result with ``isError``.
        """
        admitted = await self.admit_tool(
            name, caller=caller, trace_id=trace_id, approved=approved, inputs=[arguments or {}]
        )
        return await self.send_tool(
            admitted,
            arguments,
            progress_callback=progress_callback,
            input_responses=input_responses,
            request_state=request_state,
            relay=relay,
            legacy=legacy,
            user_token=user_token,
        )

    async def admit_tool(
        self,
        name: str,
        *,
        caller: Caller,
        trace_id: str | None = None,
        approved: bool = False,
        inputs: Sequence[Any] | None = None,
    ) -> AdmittedTool:
        """Decide and mint a call of the tool ``name`` (``approved``: an admin
        approved this very call, `gateway.mcp.approvals`; ``inputs``: what the
        coordination rules read). A caller that must record something before
        the call is sent (a flow step: its token, "sent") does it between
        this and `send_tool`. Raises `ToolNotFound` and the policy's refusals."""
        tools, servers = await self._current()
        tool = tools.get(name)
        server = servers.get(tool.server_id) if tool else None
        if tool is None or tool.withheld is not None or server is None:
            raise ToolNotFound(name)  # a withheld tool holds a name that is not its own
        # The policy decides and mints (denials are audited there).
        permit = await self.delegations.admit_target(
            caller,
            Target(tool.server_id),
            server.resource,
            event=AUDIT_EVENT,
            trace_id=trace_id or new_trace_id(),
            action=tool.upstream_name,
            kind="tool",
            approved=approved,
            inputs=inputs,
        )
        return AdmittedTool(tool, server, permit)

    async def send_tool(
        self, admitted: AdmittedTool, arguments: Mapping[str, Any] | None, **options: Any
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Send a call `admit_tool` admitted (``options``: `tool_calls.send`'s)."""
        return await tool_calls.send(
            self.delegate,
            self.upstreams,
            admitted,
            arguments,
            connect_timeout_seconds=self._settings.connect_timeout_seconds,
            default_timeout_seconds=self._settings.default_timeout_seconds,
            idempotent=self.idempotent(admitted.tool),
            **options,
        )

    def idempotent(self, tool: FederatedTool) -> bool:
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
        if registration.reached_by == "stdio":
            if not admin:
                raise RegistrationRefused(
                    f"registering a stdio server runs a command on the gateway: "
                    f"it needs {ADMIN_SCOPE}"
                )
            check_command(
                self._settings.stdio_commands, registration.command or "", registration.args
            )
        else:
            assert registration.url is not None
            await self._fetcher.resolve(registration.url)  # FetchRefused: the SSRF rules
        check_users_own(registration.credential, admin, self._settings.users_own)
        if not admin and registration.resource not in (None, registration.url):
            # The resource is the audience of tokens minted for the server; a
            # registrant choosing another target's audience would receive
            # tokens that target accepts.
            raise RegistrationRefused(
                f"only an admin may give a resource other than the server's URL ({ADMIN_SCOPE})"
            )
        server_id = registration.id or await self._free_slug(registration.name)
        try:  # one name on /mcp, one target: a refusal is audited
            if (refusal := reserved_id(server_id)) is not None:
                raise refusal.error(f"MCP server {server_id}")
            if registration.id is not None and await self.store.id_taken(server_id):
                raise McpServerConflict(server_id)
            shown, sealed = stored_form(registration.credential, self._settings.sealing_secret)
            shown = with_registrant(shown, principal.subject, principal.issuer)
            new = NewMcpServer(
                id=server_id,
                name=registration.name,
                transport=registration.reached_by,
                url=registration.url,
                command=(
                    {"command": registration.command, "args": list(registration.args)}
                    if registration.command
                    else None
                ),
                resource=registration.resource
                or registration.url
                or f"urn:switchboard:mcp:{server_id}",
                timeout_seconds=registration.timeout_seconds,
                credential=shown,
                credential_secret=sealed,
                registered_by=principal.subject,
                trusted_registrant=admin,
                prefix_tools=registration.prefix_tools,
            )
            if api is not None:
                new = replace(new, transport="openapi", command={"openapi": api.stored()})
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
