"""The MCP federation: upstream MCP servers' tools, namespaced, pinned, permissioned.

Two faces:

* the registry API (`register`, `refresh`, `approve`, `remove`, and `shown`
  for reads), used by `gateway/api/mcp_servers.py`: `McpServers`
  (`gateway.federation.servers`), over this federation;
* the Python API the gateway's MCP front end uses: `tools()` and
  `call_tool()`. A call runs the one delegation pipeline: the MCP server is a
  policy target like an agent (``agents.<server id>.tools.<tool name>`` in the
  policy file), `Delegate.call` decides, mints and sends, the upstream
  gets the credential configured for it (never the caller's token), and the
  outcome is audited (event ``mcp``), also when the call is refused.

A tool is callable only while its definition hashes to the approved digest
(`registry.mcp_tools`); otherwise the call fails with `ToolQuarantined`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from adapters.mcp_relay import CallRelay
from adapters.trace_context import new_trace_id
from gateway.delegation.call import Call
from gateway.delegation.delegate import Delegate, Sending
from gateway.delegation.permits import Permit
from gateway.delegation.pipeline import Caller, Delegations
from gateway.delegation.resilience import Resilience
from gateway.federation import tool_calls
from gateway.federation.catalog import BATCH_TOOLS, Server, ToolCatalog
from gateway.federation.credential_checks import UsersOwnChecks
from gateway.federation.federated_tools import (
    AUDIT_EVENT,
    SNAPSHOT_SECONDS,
    FederatedTool,
    ToolNotFound,
    restamped,
)

# `probe` lists an MCP server's tools, or reads a REST API's from its document.
from gateway.federation.tool_calls import AdmittedTool
from gateway.federation.upstreams import McpUpstreams
from policies.policy import Decision, Target
from policies.rules import handoff
from registry.fetch import SafeFetcher
from registry.mcp_rows import McpServerConfig
from registry.mcp_store import SqlMcpStore

logger = logging.getLogger(__name__)


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
        # What is worked out from the catalog and kept (tool search's index):
        # brought in step by an admin's change before it is answered.
        self.derived: list[Callable[[], Awaitable[None]]] = []

    # --- The front end's API --------------------------------------------------------

    async def tools(
        self,
        caller: Caller | None = None,
        *,
        include_uncallable: bool = False,
        snapshot: Mapping[str, FederatedTool] | None = None,
        decided: Callable[[FederatedTool], Decision] | None = None,
    ) -> list[FederatedTool]:
        """The federated tools (of ``snapshot``, or current): a ``caller``'s, those it may
        call (`call_tool`'s decision; ``decided``: that decision as the caller keeps
        it, `gateway.mcp.tool_decisions`); only callable ones unless ``include_uncallable``."""
        tools = snapshot if snapshot is not None else (await self._current())[0]

        def allowed(tool: FederatedTool) -> bool:
            if caller is None:
                return True
            return decided(tool).allowed if decided is not None else self.may_call(caller, tool)

        return [
            tool
            for tool in tools.values()
            if (include_uncallable or tool.callable) and allowed(tool)
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
        on_sending: Callable[[Permit], Awaitable[None]] | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Call a federated tool on ``caller``'s behalf, through the core's
        `Delegate.call` (``relay`` and ``legacy``: `McpUpstream.call_tool`).
        ``on_sending`` runs, with the call's permit, once the call will be
        sent (`tool_calls.sending`): a flow step writes there that it sent,
        with the token it went with.

        Raises `ToolNotFound`, `DelegationDenied` / `ApprovalRequired` (the
        policy), `ToolQuarantined`, `UpstreamUnavailable` / `UpstreamTimeout`
        (the server) and `UpstreamError` (the server answered with a JSON-RPC
        error). A tool's own failure is a result with ``isError``.
        """
        tool, server, call = await self._tool_call(name, arguments, caller, trace_id, approved)

        async def side(permit: Permit) -> Sending[tool_calls.Result]:
            return await self._sending(
                AdmittedTool(tool, server, permit),
                arguments,
                progress_callback=progress_callback,
                input_responses=input_responses,
                request_state=request_state,
                relay=relay,
                legacy=legacy,
                user_token=user_token,
                on_sending=None if on_sending is None else functools.partial(on_sending, permit),
            )

        return restamped(await self.delegate.call(call, side))

    async def _tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        caller: Caller,
        trace_id: str | None,
        approved: bool,
    ) -> tuple[FederatedTool, Server, Call[Target]]:
        """The tool ``name`` and its server, and the call of it as the core
        decides it. The coordination rules read the arguments: every tool
        call is one they see (an empty call too). Raises `ToolNotFound`."""
        tools, servers = await self._current()
        tool = tools.get(name)
        server = servers.get(tool.server_id) if tool else None
        if tool is None or tool.withheld is not None or server is None:
            raise ToolNotFound(name)  # a withheld tool holds a name that is not its own
        call = Call(
            caller,
            Target(tool.server_id),
            event=AUDIT_EVENT,
            trace_id=trace_id or new_trace_id(),
            action=tool.upstream_name,
            kind="tool",
            approved=approved,
            inputs=[arguments or {}],
            audience=server.resource,
        )
        return tool, server, call

    async def _sending(
        self, admitted: AdmittedTool, arguments: Mapping[str, Any] | None, **options: Any
    ) -> Sending[tool_calls.Result]:
        """How to send an admitted call, with this gateway's timeouts and the
        tool's idempotency (`tool_calls.sending`)."""
        return await tool_calls.sending(
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

    async def changed(self, server_id: str | None = None) -> None:
        """An admin's change to ``server_id``'s rows (a registration, a
        refresh, an approval, a removal): `invalidate`, then what is derived
        from the catalog is brought in step, so that the first search after
        it does not pay for it. A derived part that fails is logged; it
        catches up at its next use."""
        self.invalidate(server_id)
        tools, _ = await self._current()
        for count, tool in enumerate(tools.values()):
            # Each new tool's definition as a listing offers it, made here
            # once (kept on the tool object), not by the first listing.
            tool.as_mcp_tool()
            if count % BATCH_TOOLS == BATCH_TOOLS - 1:
                await asyncio.sleep(0)  # other requests between batches
        for bring_in_step in self.derived:
            try:
                await bring_in_step()
            except Exception:
                logger.warning("MCP catalog: a derived part is not in step", exc_info=True)

    # --- Helpers ---------------------------------------------------------------------------

    async def _current(self) -> tuple[Mapping[str, FederatedTool], Mapping[str, Server]]:
        # A change made on another replica (an approval, a refresh) is seen
        # within SNAPSHOT_SECONDS (plus one read of the servers' versions).
        return await self.catalog.current()
