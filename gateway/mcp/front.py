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
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server import Server, ServerRequestContext
from mcp.server.request_state import RequestStateBoundary
from mcp.server.streamable_http_manager import (
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
)
from mcp.server.subscriptions import ListenHandler
from mcp.shared.exceptions import MCPDeprecationWarning
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from adapters.mcp import UpstreamError, UpstreamUnavailable
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.approvals import Approval
from gateway.delegation.pipeline import ApprovalRequired, Caller, DelegationDenied
from gateway.federation.federated_tools import ToolNotFound, ToolQuarantined
from gateway.federation.federation import McpFederation
from gateway.federation.offerings import McpOfferings
from gateway.http.jsonrpc_ids import KeepRequestId
from gateway.mcp.agent_tools import INPUT_SCHEMA, AgentSkillTools, SkillTool
from gateway.mcp.approvals import (
    STATUS_SCHEMA,
    STATUS_TOOL,
    STATUS_TOOL_DEFINITION,
    McpApprovals,
    held_for,
)
from gateway.mcp.approvals import wanted as approval_asked
from gateway.mcp.auth import MCP_PATH, McpAuth
from gateway.mcp.errors import (
    TOO_MANY_ROUNDS,
    OutageBoundary,
    answers_connect,
    caller_of,
    connect_refusal,
    connection_required,
    credential_refusal,
    mcp_error,
    outage_record,
    trace_of,
    user_token_of,
)
from gateway.mcp.events import MemoryEventStore, SessionBinding
from gateway.mcp.fastpath import McpFastPath, sdk_matches
from gateway.mcp.front_offerings import OfferingHandlers
from gateway.mcp.gateway_server import GatewayServer
from gateway.mcp.input_relay import (
    MAX_ROUNDS,
    ProgressRelay,
    ask_legacy_client,
    can_be_asked,
    is_modern,
)
from gateway.mcp.namespace import Listing, NameContested, ToolNamespace, in_set
from gateway.mcp.notify import ToolListNotifier
from gateway.mcp.pages import page
from gateway.mcp.relay import DownstreamRelay
from gateway.mcp.replicas import SessionRouting
from gateway.mcp.search_audit import searched
from gateway.mcp.sets import SessionPaths, SetCache, SetScope, current_set
from gateway.mcp.skill_calls import call_skill
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
from gateway.mcp.transport_settings import request_state_security, transport_security
from gateway.settings import Settings
from gateway.storage.outages import DependencyUnavailable
from gateway.storage.replicas import ReplicaDirectory
from policies.policy import ActionKind
from policies.tokens import TokenInvalid
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
        offered = self.offerings
        with warnings.catch_warnings():
            # `logging/setLevel` is deprecated as of 2026-07-28 (SEP-2577), but
            # 2025-11-25 clients still send it.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            self.server: Server[Any] = GatewayServer(
                "switchboard",
                version=version,
                title="Switchboard",
                description=(
                    "The MCP tools, resources and prompts of every server federated "
                    "by this gateway that you may use"
                ),
                on_list_tools=self.on_list_tools,
                on_call_tool=self.on_call_tool,
                on_subscriptions_listen=ListenHandler(self.notifier.bus),
                on_list_resources=offered.on_list_resources,
                on_list_resource_templates=offered.on_list_resource_templates,
                on_read_resource=offered.on_read_resource,
                on_subscribe_resource=offered.on_subscribe_resource,
                on_unsubscribe_resource=offered.on_unsubscribe_resource,
                on_list_prompts=offered.on_list_prompts,
                on_get_prompt=offered.on_get_prompt,
                on_completion=offered.on_completion,
                on_set_logging_level=offered.on_set_logging_level,
                # Runs before the handlers, for every 2026-07-28 tools/call with
                # arguments (Mcp-Param-* header checks); without it the SDK would
                # run a whole tools/list per call.
                get_tool_input_schema=self.input_schema,
            )
        self.server.middleware.append(
            RequestStateBoundary(
                request_state_security(settings),
                default_audience=settings.effective_resource_id + MCP_PATH,
            )
        )
        self.server.middleware.append(OutageBoundary(self._outage))
        # Resumable SSE streams for 2025-11-25 sessions (gateway.mcp.events).
        self.events = (
            MemoryEventStore(
                max_events_per_stream=settings.mcp_resume_max_events_per_stream,
                max_events=settings.mcp_resume_max_events,
                max_bytes=settings.mcp_resume_max_bytes,
                max_events_per_owner=settings.mcp_resume_max_events_per_user,
                max_bytes_per_owner=settings.mcp_resume_max_bytes_per_user,
                idle_seconds=settings.mcp_session_idle_seconds,
            )
            if settings.mcp_resumable
            else None
        )
        # 2025-11-25 sessions served whichever replica a request lands on.
        self.replicas = replicas if settings.mcp_session_routing else None
        self._routing: SessionRouting | None = None
        self._fast_path = settings.mcp_fast_path and sdk_matches()
        if settings.mcp_fast_path and not self._fast_path:
            logger.warning("mcp_fast_path: not the mcp SDK it mirrors; /mcp takes the SDK's path")
        self._max_body = settings.max_request_bytes
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            event_store=self.events,
            retry_interval=settings.mcp_sse_retry_ms if self.events is not None else None,
            # SSE answers, not JSON: with JSON a 2026-07-28 call can neither
            # report progress nor be cancelled (the SDK answers plain JSON
            # anyway when a handler finishes quickly and silently).
            json_response=False,
            stateless=False,  # 2025-11-25 sessions, so list_changed can reach them
            security_settings=transport_security(settings),
            session_idle_timeout=settings.mcp_session_idle_seconds,
            max_request_body_size=settings.max_request_bytes,
        )

    def routes(self) -> list[BaseRoute]:
        # One exact route (GET for the 2025 stream, POST, DELETE to end a
        # session): a Mount would redirect `/mcp` to `/mcp/`.
        app: ASGIApp = StreamableHTTPASGIApp(self.manager)
        if self._fast_path:
            app = McpFastPath(self.manager, self._max_body)
        if self.events is not None:
            app = SessionBinding(app, self.events)  # after McpAuth: the caller is known
        if self.replicas is not None:
            # Outside the binding: it and the SDK see the SDK's own session ids.
            app = self._routing = SessionRouting(app, self.replicas)
        # The SDK's envelope refusals answer "id": null; the caller's id goes
        # back whenever it could be read (JSON-RPC 2.0 section 5).
        # A 2025-11-25 session answers only where it was opened (`/mcp` or a set's).
        app = SessionPaths(app)
        return [
            Route(MCP_PATH, endpoint=McpAuth(KeepRequestId(app))),
            # Virtual servers: the same endpoint, offering one set (`gateway.mcp.sets`).
            Route(
                MCP_PATH + "/{set_name}",
                endpoint=McpAuth(SetScope(KeepRequestId(app), lambda: self.sets)),
            ),
        ]

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.manager.run():
            try:
                yield
            finally:
                await self.notifier.aclose()
                await self.offerings.subscriptions.aclose()
                if self._routing is not None:
                    await self._routing.aclose()

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
            # tool is decided here.
            federated: list[tuple[str, str, ActionKind]] = [
                (t.server_id, t.upstream_name, "tool") for t in listing.federated
            ]
            if any(s.held for s in listing.skills) or held_for(
                self._federation().delegations, caller, federated
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
            return await searched(self.tool_search, ctx, params, lambda: self._offered_here(caller))
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
        try:
            target = await self.namespace.resolve(params.name)
        except NameContested as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        except ToolNotFound as exc:
            raise mcp_error(exc, params.name) from None
        chosen = current_set.get()
        if chosen is not None and not in_set(chosen, target):
            # Outside this virtual server: as a name it does not have.
            raise mcp_error(ToolNotFound(params.name), params.name)
        if isinstance(target, SkillTool):
            means = (target.agent_id, target.skill_id)
        else:
            means = (target.server_id, target.upstream_name)
        if expected is not None and means != expected:
            raise MCPError(
                types.INVALID_PARAMS,
                f"{params.name} now names {means[0]}'s {means[1]!r}, not "
                f"{expected[0]}'s {expected[1]!r} that was approved: not called",
            )
        connect_answer = answers_connect(params)
        if isinstance(target, SkillTool):
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

        responses, state = params.input_responses, params.request_state
        if connect_answer is not None:
            # The answer to our own "connect first" question: the call is made
            # afresh -- the upstream never sees our question's state. Declined
            # and still not connected: a tool error, not the question again.
            responses, state = None, None
        declined = connect_answer is False
        for _ in range(MAX_ROUNDS):
            try:
                result = await self._federation().call_tool(
                    params.name,
                    params.arguments,
                    caller=caller,
                    trace_id=trace_id,
                    progress_callback=progress,
                    input_responses=responses,
                    request_state=state,
                    approved=approved,
                    relay=DownstreamRelay(ctx, self.offerings.log_level),
                    legacy=not is_modern(ctx),
                    user_token=user_token_of(ctx),
                )
            except ApprovalRequired as pending:
                if self.approvals is None:
                    raise mcp_error(pending, params.name) from None
                schema = target.definition.get("outputSchema") is not None
                return await self.approvals.hold(
                    pending,
                    params.name,
                    params.arguments,
                    kind="tool",
                    output_schema=schema,
                    ask=can_be_asked(ctx),
                )
            except ConnectionRequired as needed:
                if declined:
                    return connect_refusal(needed, str(needed))
                return connection_required(ctx, needed, params.name, modern=is_modern(ctx))
            except UserCredentialUnavailable as missing:
                return credential_refusal(missing, params.name)
            except (
                ToolNotFound,
                DelegationDenied,
                TokenInvalid,
                ToolQuarantined,
                UpstreamUnavailable,
                UpstreamError,
            ) as exc:
                raise mcp_error(exc, params.name) from None
            if not isinstance(result, types.InputRequiredResult) or is_modern(ctx):
                return result
            responses = await ask_legacy_client(ctx, result.input_requests or {})
            state = result.request_state
        raise MCPError(
            TOO_MANY_ROUNDS, f"{params.name} asked for input more than {MAX_ROUNDS} times"
        )

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
