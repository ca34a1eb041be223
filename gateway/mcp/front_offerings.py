"""`/mcp` handlers for resources, prompts, completions and logging.

They decode, call `gateway.federation.offerings.McpOfferings` (which decides, mints,
calls the owning server with its own credential and audits) and encode:

* `resources/list`, `resources/templates/list`, `prompts/list`: what this
  caller may read or get, by the decision a read or get runs;
* `resources/read`, `prompts/get`: an `input_required` answer goes to a
  2026-07-28 client as is; a 2025-11-25 client is asked on its stream and
  the gateway retries upstream (as for tools);
* `completion/complete`: forwarded to the server owning the prompt or template;
* `resources/subscribe` / `unsubscribe` (2025-11-25): kept per session;
  `notifications/resources/updated` from a server reaches the sessions that
  subscribed to that resource and may still read it (`ResourceSubscriptions`);
* `logging/setLevel` (2025-11-25): accepted and kept per session. The gateway
  sends no log messages of its own; a tool's log lines reach the caller of
  that call at or above this level (`gateway.mcp.relay`).

Errors: an unknown resource is -32602 "Resource not found" with the URI in
``data`` (SEP-2164), an unknown prompt -32602 "Unknown prompt: NAME", a
withheld (flagged) prompt -32011; refusals and upstream failures as for tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from adapters.mcp import UpstreamError, UpstreamUnavailable
from gateway.compat.mcp import connection_of
from gateway.connections.errors import UserCredentialUnavailable
from gateway.delegation.pipeline import Caller, DelegationDenied
from gateway.federation.offered import PromptNotFound, PromptWithheld, ResourceNotFound
from gateway.federation.offerings import McpOfferings
from gateway.mcp.errors import (
    DELEGATION_REFUSED,
    TOO_MANY_ROUNDS,
    TOOL_QUARANTINED,
    caller_of,
    mcp_error,
    trace_of,
)
from gateway.mcp.input_relay import MAX_ROUNDS, ask_legacy_client, is_modern
from gateway.mcp.sets import current_set
from policies.tokens import TokenInvalid

logger = logging.getLogger(__name__)
SEND_TIMEOUT_SECONDS = 2.0
R = TypeVar("R", bound=types.Result)
Responses = types.InputResponses | None


def offering_error(exc: Exception, name: str) -> MCPError:
    if isinstance(exc, ResourceNotFound):
        # SEP-2164: -32602, with the URI in data (-32002 before it).
        return MCPError(types.INVALID_PARAMS, "Resource not found", {"uri": exc.uri})
    if isinstance(exc, PromptNotFound):
        return MCPError(types.INVALID_PARAMS, f"Unknown prompt: {exc.name}")
    if isinstance(exc, PromptWithheld):
        flags = [flag.as_dict() for flag in exc.prompt.flags]
        return MCPError(TOOL_QUARANTINED, str(exc), {"flags": flags})
    if isinstance(exc, UserCredentialUnavailable):
        return MCPError(DELEGATION_REFUSED, f"{name}: {exc.reason}", {"denial": exc.outcome})
    return mcp_error(exc, name)


_REFUSALS = (
    UserCredentialUnavailable,
    ResourceNotFound,
    PromptNotFound,
    PromptWithheld,
    DelegationDenied,
    TokenInvalid,
    UpstreamUnavailable,
    UpstreamError,
)


class ResourceSubscriptions:
    """2025-11-25 sessions' resource subscriptions, by (server, upstream URI).

    Sessions are held by their `Connection`, weakly (the SDK has no "session
    ended" hook; see `gateway.mcp.notify`)."""

    def __init__(self) -> None:
        self._by_connection: weakref.WeakKeyDictionary[
            Connection, dict[tuple[str, str], tuple[str, Caller]]
        ] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, ctx: ServerRequestContext, key: tuple[str, str], uri: str) -> None:
        self._by_connection.setdefault(connection_of(ctx.session), {})[key] = (uri, caller_of(ctx))

    def remove(self, ctx: ServerRequestContext, uri: str) -> None:
        subscribed = self._by_connection.get(connection_of(ctx.session), {})
        for key, (offered, _) in list(subscribed.items()):
            if offered == uri:
                del subscribed[key]

    def subscribers(self, key: tuple[str, str]) -> list[tuple[Connection, str, Caller]]:
        return [
            (connection, *subscribed[key])
            for connection, subscribed in list(self._by_connection.items())
            if key in subscribed
        ]

    def updated(self, server_id: str, uri: str, may_read: Callable[[Caller], bool]) -> None:
        """Tell every session subscribed to (server, uri) that still may read it."""
        for connection, offered, caller in self.subscribers((server_id, uri)):
            if may_read(caller):
                task = asyncio.get_running_loop().create_task(self._send(connection, offered))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, connection: Connection, uri: str) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                await connection.outbound.notify("notifications/resources/updated", {"uri": uri})
        except Exception as exc:  # a closed session: forget it
            logger.debug("resources/updated not delivered: %r", exc)
            self._by_connection.pop(connection, None)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class OfferingHandlers:
    def __init__(self, offerings: Callable[[], McpOfferings]) -> None:
        self._offerings = offerings
        self.subscriptions = ResourceSubscriptions()
        self._levels: weakref.WeakKeyDictionary[Connection, types.LoggingLevel] = (
            weakref.WeakKeyDictionary()
        )

    async def on_list_resources(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        offered = await self._offerings().resources(caller_of(ctx))
        return types.ListResourcesResult(
            resources=[r.resource for r in offered if _within(r.server_id)]
        )

    async def on_list_resource_templates(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        offered = await self._offerings().templates(caller_of(ctx))
        return types.ListResourceTemplatesResult(
            resource_templates=[t.template for t in offered if _within(t.server_id)]
        )

    async def on_read_resource(
        self, ctx: ServerRequestContext, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        caller, trace_id = caller_of(ctx), trace_of(ctx)

        async def read(
            responses: types.InputResponses | None, state: str | None
        ) -> types.ReadResourceResult | types.InputRequiredResult:
            await self._uri_in_set(params.uri)
            return await self._offerings().read_resource(
                params.uri,
                caller=caller,
                trace_id=trace_id,
                input_responses=responses,
                request_state=state,
            )

        return await _with_input(ctx, params.uri, read, params)

    async def on_list_prompts(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        offered = await self._offerings().prompts(caller_of(ctx))
        return types.ListPromptsResult(prompts=[p.prompt for p in offered if _within(p.server_id)])

    async def on_get_prompt(
        self, ctx: ServerRequestContext, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        caller, trace_id = caller_of(ctx), trace_of(ctx)

        async def get(
            responses: types.InputResponses | None, state: str | None
        ) -> types.GetPromptResult | types.InputRequiredResult:
            offerings = self._offerings()
            if current_set.get() and not _within(await offerings.server_of_prompt(params.name)):
                raise PromptNotFound(params.name)
            return await self._offerings().get_prompt(
                params.name,
                params.arguments,
                caller=caller,
                trace_id=trace_id,
                input_responses=responses,
                request_state=state,
            )

        return await _with_input(ctx, params.name, get, params)

    async def on_completion(
        self, ctx: ServerRequestContext, params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        name = params.ref.name if isinstance(params.ref, types.PromptReference) else params.ref.uri
        try:
            if current_set.get() is not None:
                await self._in_set(params.ref)
            return await self._offerings().complete(
                params, caller=caller_of(ctx), trace_id=trace_of(ctx)
            )
        except _REFUSALS as exc:
            raise offering_error(exc, name) from None

    async def on_subscribe_resource(
        self, ctx: ServerRequestContext, params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        try:
            await self._uri_in_set(params.uri)  # before the subscription is decided
            key = await self._offerings().subscription_target(params.uri, caller_of(ctx))
        except _REFUSALS as exc:
            raise offering_error(exc, params.uri) from None
        self.subscriptions.add(ctx, key, params.uri)
        return types.EmptyResult()

    async def _uri_in_set(self, uri: str) -> None:
        """Raises `ResourceNotFound` for a resource outside the virtual
        server's set -- its server down or not, as for a URI it does not have."""
        if current_set.get() is None:
            return
        try:
            server = await self._offerings().server_of_uri(uri)
        except UpstreamUnavailable:
            raise ResourceNotFound(uri) from None
        if not _within(server):
            raise ResourceNotFound(uri)

    async def _in_set(self, ref: types.PromptReference | types.ResourceTemplateReference) -> None:
        """A completion's prompt or template is in the virtual server's set."""
        offerings = self._offerings()
        if isinstance(ref, types.PromptReference):
            if not _within(await offerings.server_of_prompt(ref.name)):
                raise PromptNotFound(ref.name)
        elif not _within(await offerings.server_of_template(ref.uri)):
            raise ResourceNotFound(ref.uri)

    async def on_unsubscribe_resource(
        self, ctx: ServerRequestContext, params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self.subscriptions.remove(ctx, params.uri)
        return types.EmptyResult()

    async def on_set_logging_level(
        self, ctx: ServerRequestContext, params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._levels[connection_of(ctx.session)] = params.level
        return types.EmptyResult()

    def log_level(self, ctx: ServerRequestContext) -> types.LoggingLevel | None:
        """The level a 2025-11-25 session set (None if it never did)."""
        return self._levels.get(connection_of(ctx.session))

    def resource_updated(self, server_id: str, notice: types.ResourceUpdatedNotification) -> None:
        """A server said a resource changed: tell the sessions subscribed to it."""
        offerings = self._offerings()
        uri = notice.params.uri
        openers = offerings.apps.known_openers()
        self.subscriptions.updated(
            server_id,
            uri,
            lambda caller: (
                offerings.may_read(caller, server_id, uri)
                and offerings.apps.refusal(caller, server_id, uri, uri, openers) is None
            ),
        )


async def _with_input(
    ctx: ServerRequestContext,
    name: str,
    call: Callable[[Responses, str | None], Awaitable[R | types.InputRequiredResult]],
    params: types.ReadResourceRequestParams | types.GetPromptRequestParams,
) -> R | types.InputRequiredResult:
    """One call, with a 2025-11-25 client asked on its stream when the server
    needs input (a 2026-07-28 client gets the `input_required` result)."""
    responses, state = params.input_responses, params.request_state
    for _ in range(MAX_ROUNDS):
        try:
            result = await call(responses, state)
        except _REFUSALS as exc:
            raise offering_error(exc, name) from None
        if not isinstance(result, types.InputRequiredResult) or is_modern(ctx):
            return result
        responses = await ask_legacy_client(ctx, result.input_requests or {})
        state = result.request_state
    raise MCPError(TOO_MANY_ROUNDS, f"{name} asked for input more than {MAX_ROUNDS} times")


def _within(server_id: str) -> bool:
    """An MCP server's offering is in the virtual server's set, if one is
    served (`gateway.mcp.sets`): resources and prompts come by server."""
    chosen = current_set.get()
    return chosen is None or server_id in chosen.select.servers
