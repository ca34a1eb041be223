"""The gateway's own MCP server: `/mcp`, Streamable HTTP, revisions 2026-07-28
and 2025-11-25 on one endpoint.

The protocol work is the official SDK's (`mcp` 2.x): its session manager routes
a request by its `MCP-Protocol-Version` header -- 2026-07-28 requests are
stateless POSTs (`server/discover`, no `initialize`), anything else the
2025-11-25 handshake with `Mcp-Session-Id` sessions -- and its low-level
`Server` dispatches to the handlers here, which hold no logic of their own:

* `tools/list` answers `ToolNamespace.listing(caller)` (`gateway.mcp.namespace`):
  the federated tools and agents' skills the policy lets this caller call, by
  the very decision `tools/call` runs (`McpFederation.may_call`,
  `Delegations.usable_skills`), each under a name that `tools/call` resolves
  (`ToolNamespace.resolve`) to that same target, so a user never sees a tool
  they cannot call, and a name never means two things;
* `tools/call` runs `McpFederation.call_tool`, the one delegation pipeline
  (decide -> mint -> approval check -> upstream with its own credential ->
  audit), forwarding progress both ways, letting a client's cancellation
  cancel the upstream call (the SDK cancels this handler; the upstream client
  then abandons its request), and passing input requests on (`gateway.mcp.input_relay`)
  as well as what a tool asks or logs mid-call (`gateway.mcp.relay`).

Errors are MCP's (2025-11-25 "Tools", "Error handling"): an unknown tool is
the JSON-RPC error -32602; the gateway's refusals and upstream failures are
JSON-RPC errors with the codes below and a message that says what happened;
a tool's own failure stays a result with ``isError``. Nothing becomes a 500.

The session manager must run for the app's whole life: `run()` is entered in
the FastAPI lifespan (a mounted app's own lifespan never runs).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from starlette.routing import BaseRoute

from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.approvals import Approval
from gateway.delegation.pipeline import Caller
from gateway.federation.federated_tools import FederatedTool, ToolNotFound
from gateway.federation.federation import McpFederation
from gateway.federation.offerings import McpOfferings
from gateway.mcp.agent_tools import INPUT_SCHEMA, AgentSkillTools, SkillTool
from gateway.mcp.approvals import (
    STATUS_SCHEMA,
    STATUS_TOOL,
    STATUS_TOOL_DEFINITION,
    McpApprovals,
)
from gateway.mcp.approvals import wanted as approval_asked
from gateway.mcp.errors import (
    answers_connect,
    caller_of,
    connect_refusal,
    connection_required,
    credential_refusal,
    mcp_error,
    outage_record,
    trace_of,
)
from gateway.mcp.front_offerings import OfferingHandlers
from gateway.mcp.gateway_server import gateway_server
from gateway.mcp.input_relay import (
    ProgressRelay,
    can_be_asked,
    is_modern,
)
from gateway.mcp.namespace import Listing, NameContested, ToolNamespace, in_set
from gateway.mcp.notify import ToolListNotifier
from gateway.mcp.pages import page
from gateway.mcp.search_audit import searched
from gateway.mcp.sets import SetCache, current_set
from gateway.mcp.skill_calls import call_skill
from gateway.mcp.tool_calls import call_tool
from gateway.mcp.tool_search import (
    CALL_TOOL,
    CALL_TOOL_DEFINITION,
    SEARCH_TOOL,
    SEARCH_TOOL_DEFINITION,
    ToolSearch,
    own_schema,
    refused_result,
    takes_headers,
    unwrapped,
    with_search,
)
from gateway.mcp.transport import McpTransport
from gateway.settings import Settings
from gateway.storage.outages import DependencyUnavailable
from gateway.storage.replicas import ReplicaDirectory
from registry.mcp_names import cut_hashed, owner_of
from registry.mcp_sets import ToolSearchMode

logger = logging.getLogger(__name__)
# The gateway's own tools a virtual server offers whatever its set selects.
_EVERY_SET = frozenset({STATUS_TOOL_DEFINITION.name})


class McpFront:
    """The `/mcp` endpoint: an SDK `Server` whose handlers call the federation.

    Built with the app (routes must exist before the lifespan); the federation
    is asked for at call time through ``federation``.
    """

    def __init__(
        self,
        settings: Settings,
        federation: Callable[[], McpFederation],
        *,
        version: str,
        replicas: ReplicaDirectory | None = None,
    ) -> None:
        self._federation = federation
        self._page_size = settings.mcp_tools_page_size
        # The agents' skills as tools; set once the A2A handler exists.
        self.agent_tools: AgentSkillTools | None = None
        # Calls held for a human's approval; set with the app.
        self.approvals: McpApprovals | None = None
        # Virtual servers' sets (`gateway.mcp.sets`); set with the app.
        self.sets: SetCache | None = None
        # Tool search (`gateway.mcp.tool_search`); set with the app.
        self.tool_search: ToolSearch | None = None
        self._search_on_mcp = settings.mcp_tool_search
        # Which target each tool name means: one rule for listing and calling.
        self.namespace = ToolNamespace(federation, lambda: self.agent_tools)
        self.namespace.claim(STATUS_TOOL_DEFINITION)
        self.namespace.claim(SEARCH_TOOL_DEFINITION)
        self.namespace.claim(CALL_TOOL_DEFINITION)
        self.notifier = ToolListNotifier()
        self._offerings: McpOfferings | None = None
        # Resources, prompts, completions, logging (gateway.mcp.front_offerings).
        self.offerings = OfferingHandlers(self._current_offerings)
        self.server = gateway_server(
            self, self.offerings, self.notifier, self._outage, settings, version
        )
        # How it is served over HTTP (`gateway.mcp.transport`).
        self.transport = McpTransport(self.server, settings, replicas, lambda: self.sets)

    def routes(self) -> list[BaseRoute]:
        return self.transport.routes()

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.transport.run():
            try:
                yield
            finally:
                await self.notifier.aclose()
                await self.offerings.subscriptions.aclose()

    def _current_offerings(self) -> McpOfferings:
        federation = self._federation()
        if self._offerings is None or self._offerings.federation is not federation:
            self._offerings = McpOfferings(federation)
        return self._offerings

    # Handlers -----------------------------------------------------------------

    async def on_list_tools(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self.notifier.remember(ctx)
        caller = caller_of(ctx)
        cursor = params.cursor if params else None
        offered = await self._offered_here(caller, continuing=cursor is not None)
        tools, next_cursor = page(
            with_search(offered, self._search_mode()), cursor, self._page_size
        )
        return types.ListToolsResult(tools=tools, next_cursor=next_cursor)

    async def _offered_here(self, caller: Caller, *, continuing: bool = False) -> list[types.Tool]:
        """What `tools/list` offers ``caller`` at this path (`/mcp` or a set's)."""
        listing = await self.namespace.listing(caller, continuing=continuing)
        # Worked out once per listing, not once per page (`gateway.mcp.per_caller`).
        if listing.offered is None:
            listing.offered = self._offer(caller, listing)
        chosen = current_set.get()
        return listing.within(chosen, _EVERY_SET) if chosen is not None else listing.offered

    def _search_mode(self) -> ToolSearchMode:
        chosen = current_set.get()
        if self.tool_search is None:
            return "off"
        if chosen is not None:
            return chosen.tool_search
        return "on" if self._search_on_mcp else "off"

    def _offer(self, caller: Caller, listing: Listing) -> list[types.Tool]:
        offered = listing.tools()
        if self.approvals is not None:
            # A skill's tool knows from its listing (decided then); a federated
            # tool by the decision its listing kept (`ToolDecisions`).
            decided = self.namespace.decisions.of(caller)
            if any(s.held for s in listing.skills) or any(
                decided(t).approval_required for t in listing.federated
            ):
                offered.append(STATUS_TOOL_DEFINITION)
        return offered

    async def on_call_tool(
        self, ctx: ServerRequestContext, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        self.notifier.remember(ctx)
        caller = caller_of(ctx)
        mode = self._search_mode()
        if mode != "off" and params.name == SEARCH_TOOL:
            assert self.tool_search is not None  # audited: `gateway.mcp.search_audit`
            # A search is not a listing's first page: the registry as found
            # within `CONTINUATION_SECONDS` will do (`gateway.mcp.registry_snapshot`).
            return await searched(
                self.tool_search, ctx, params, lambda: self._offered_here(caller, continuing=True)
            )
        if mode == "only" and params.name == CALL_TOOL:
            # The tool it names, called as itself (decided, held, recorded).
            inner = unwrapped(params)
            if isinstance(inner, types.CallToolResult):
                return inner
            if is_modern(ctx) and takes_headers(self.input_schema(inner.name)):
                return refused_result(f"{inner.name} takes Mcp-Param headers: call it by name")
            params = inner
        if self.approvals is not None and (held := approval_asked(params)) is not None:
            # The outcome of a call held for approval (`gateway.mcp.approvals`).
            async def approved(approval: Approval) -> Any:
                # A fresh call: the state and answers of the approval's own
                # question are the gateway's, not the upstream's.
                call = params.model_copy(
                    update={
                        "name": approval.tool,
                        "arguments": approval.request.get("arguments") or {},
                        "request_state": None,
                        "input_responses": None,
                    }
                )
                # Only to the target and action the admin approved.
                expected = (approval.target, approval.action)
                return await self._call(
                    ctx, call, caller, approval.trace_id, approved=True, expected=expected
                )

            tool = self.namespace.known(params.name)
            return await self.approvals.collect(
                held,
                params,
                caller,
                approved,
                ask=can_be_asked(ctx),
                output_schema=tool is not None and "outputSchema" in tool.definition,
                within=self._in_current_set if current_set.get() is not None else None,
            )
        return await self._call(ctx, params, caller, trace_of(ctx))

    async def _in_current_set(self, name: str) -> bool:
        chosen = current_set.get()
        try:
            target = await self.namespace.resolve(name)
        except (ToolNotFound, NameContested):
            return False
        return chosen is None or in_set(chosen, target)

    async def _call(
        self,
        ctx: ServerRequestContext,
        params: types.CallToolRequestParams,
        caller: Caller,
        trace_id: str,
        *,
        approved: bool = False,
        expected: tuple[str, str | None] | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        progress = ProgressRelay(ctx)
        target = await self._target(params.name, expected)
        connect_answer = answers_connect(params)
        if isinstance(target, FederatedTool):
            return await call_tool(
                self._federation(),
                self.approvals,
                target,
                params,
                caller,
                trace_id,
                progress,
                approved,
                ctx=ctx,
                log_level=self.offerings.log_level,
                connect_answer=connect_answer,
            )
        try:
            assert self.agent_tools is not None
            return await call_skill(
                self.agent_tools,
                self.approvals,
                target,
                params,
                caller,
                trace_id,
                progress,
                approved,
                ctx=ctx,
            )
        except ConnectionRequired as needed:  # the agent takes its users' own tokens
            if connect_answer is False:
                return connect_refusal(needed, str(needed))
            return connection_required(ctx, needed, params.name, modern=is_modern(ctx))
        except UserCredentialUnavailable as missing:
            return credential_refusal(missing, params.name)

    async def _target(
        self, name: str, expected: tuple[str, str | None] | None
    ) -> FederatedTool | SkillTool:
        """What ``name`` means here; ``expected``: what an admin approved."""
        try:
            target = await self.namespace.resolve(name)
        except NameContested as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        except ToolNotFound as exc:
            raise mcp_error(exc, name) from None
        chosen = current_set.get()
        if chosen is not None and not in_set(chosen, target):
            # Outside this virtual server: as a name it does not have.
            raise mcp_error(ToolNotFound(name), name)
        if isinstance(target, SkillTool):
            means = (target.agent_id, target.skill_id)
        else:
            means = (target.server_id, target.upstream_name)
        if expected is not None and means != expected:
            raise MCPError(
                types.INVALID_PARAMS,
                f"{name} now names {means[0]}'s {means[1]!r}, not "
                f"{expected[0]}'s {expected[1]!r} that was approved: not called",
            )
        return target

    async def _outage(self, ctx: ServerRequestContext, outage: DependencyUnavailable) -> None:
        """Audit a request a dependency outage refused (kept until the database is back)."""
        await self._federation().delegations.record_event(outage_record(ctx, outage))

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        if name == STATUS_TOOL and self.approvals is not None:
            return STATUS_SCHEMA
        if (schema := own_schema(name)) is not None:
            return schema
        tool = self.namespace.known(name)
        if tool is None:
            # An agent's skill (or nothing): the schema is the same for all.
            skill_like = owner_of(name) is not None or cut_hashed(name)
            return INPUT_SCHEMA if skill_like and self.agent_tools is not None else None
        schema = tool.definition.get("inputSchema")
        return schema if isinstance(schema, Mapping) else None

    def set_changed(self, name: str) -> None:
        """A virtual server's set changed: its clients (only) list again."""
        self.notifier.changed("tools", only=name)
        self.notifier.changed("prompts", only=name)

    def tools_changed(self) -> None:
        self.notifier.changed()

    def upstream_list_changed(self, server_id: str, kind: str) -> None:
        """A federated server said its tools (listed again since) or its
        prompts changed: tell every client, who lists again."""
        if kind == "prompts":
            self._current_offerings().forget(server_id, "prompts")
            self.notifier.changed("prompts")
        elif kind == "tools":
            self.notifier.changed("tools")
