"""Input a tool asks for mid-call, for a client on either protocol revision.

An upstream tool that needs input (an elicitation, a sampling request, the
client's roots) answers a 2026-07-28 multi-round-trip `InputRequiredResult`;
the federation returns it unresolved. What the gateway does with it depends on
the client that called (MCP 2026-07-28 "Multi round-trip requests"):

* a 2026-07-28 client gets the `InputRequiredResult` itself and retries with
  `inputResponses` + the echoed `requestState` (which the gateway's
  `RequestStateBoundary` sealed and bound to the caller on the way out);
* a 2025-11-25 client cannot take such a result, so each request is sent to
  it as the server-to-client request of its revision (`elicitation/create`,
  `sampling/createMessage`, `roots/list`) on the call's own stream, and the
  gateway retries upstream with the answers.
"""

from __future__ import annotations

from typing import Any, overload

import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

MAX_ROUNDS = 8  # a tool that keeps asking cannot hold a call open forever


def is_modern(ctx: ServerRequestContext) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def without_context(params: types.CreateMessageRequestParams) -> types.CreateMessageRequestParams:
    """A sampling request asks for no context of the caller's session.

    To the caller's client the gateway is one server, so the "thisServer"
    (let alone "allServers") context it would add is what *every* upstream
    said in that session: an upstream must not read its neighbours' results
    through the caller's model."""
    if params.include_context in (None, "none"):
        return params
    return params.model_copy(update={"include_context": "none"})


@overload
async def put_to_caller(
    ctx: ServerRequestContext, request: types.ElicitRequest
) -> types.ElicitResult: ...
@overload
async def put_to_caller(
    ctx: ServerRequestContext, request: types.CreateMessageRequest
) -> types.CreateMessageResult | types.CreateMessageResultWithTools: ...
@overload
async def put_to_caller(
    ctx: ServerRequestContext, request: types.ListRootsRequest
) -> types.ListRootsResult: ...
async def put_to_caller(ctx: ServerRequestContext, request: Any) -> types.InputResponse:
    """One question to a 2025-11-25 caller, on its call's own stream (MCP
    2025-11-25 "Transports": requests related to a client request go on its
    stream); a sampling request without the caller's session context."""
    related = ServerMessageMetadata(related_request_id=ctx.request_id)
    if isinstance(request, types.ElicitRequest):
        return await ctx.session.send_request(request, types.ElicitResult, metadata=related)
    if isinstance(request, types.CreateMessageRequest):
        params = request.params
        request = types.CreateMessageRequest(params=without_context(params))
        result_type: type[types.CreateMessageResult | types.CreateMessageResultWithTools] = (
            types.CreateMessageResultWithTools if params.tools else types.CreateMessageResult
        )
        return await ctx.session.send_request(request, result_type, metadata=related)
    return await ctx.session.send_request(request, types.ListRootsResult, metadata=related)


async def ask_legacy_client(
    ctx: ServerRequestContext, requests: types.InputRequests
) -> types.InputResponses:
    """Put each input request to a 2025-11-25 client and collect its answers."""
    return {key: await put_to_caller(ctx, request) for key, request in requests.items()}


class ProgressRelay:
    """The upstream's progress, reported against the caller's own progressToken
    (a no-op when the caller sent none)."""

    def __init__(self, ctx: ServerRequestContext) -> None:
        self._ctx = ctx

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        await self._ctx.session.report_progress(progress, total, message)


def can_be_asked(ctx: ServerRequestContext) -> bool:
    """A 2026-07-28 client that declared elicitation: one we may answer with an
    `input_required` result that asks its user a question."""
    if not is_modern(ctx):
        return False
    capabilities = getattr(ctx.session, "client_capabilities", None)
    return capabilities is not None and capabilities.elicitation is not None


def takes_form(elicitation: types.ElicitationCapability) -> bool:
    """Whether a declared elicitation capability covers form mode: an empty
    one means form only (MCP 2025-11-25 "Elicitation", capabilities)."""
    return elicitation.form is not None or elicitation.url is None
