"""MCP tool calls that wait for a human's approval (`gateway.delegation.approvals`).

A `tools/call` to a tool (a federated one, or an agent's skill) that the
policy marks ``approval: true`` makes no call. It is held, and the client
gets a result saying so -- not a JSON-RPC error: the call is not refused, and
a model reading it can act on it:

    {"content": [{"type": "text", "text": "... awaits an admin's approval ..."}],
     "structuredContent": {"approval": "apr_…", "state": "pending"},
     "isError": false}

(``isError`` is true for a tool that declares an ``outputSchema``: clients
check a non-error result against it, and this one cannot match it.)

A 2026-07-28 client that can elicit gets "pending" as an ``input_required``
result instead (multi round-trip requests): one question, whether to keep
waiting, and a request state naming the approval. Its retry of the same call
asks again until an admin has decided, then gets the call's result; declining
ends the wait with the pending result above. Any client can also ask for the
outcome, in either revision, in one of two ways:

* the gateway's own tool ``switchboard__approval_status`` with
  ``{"approval": "apr_…"}`` -- listed by `tools/list` to a caller who sees a
  tool that needs approval, usable by a model;
* the same `tools/call` again, with ``_meta: {"switchboard/approval": "apr_…"}``
  (the arguments must be the ones approved).

While pending, the answer is the pending result again. Rejected (or
withdrawn), it is an ``isError`` result with the admin's reason. Approved,
the first ask makes the call -- decided again with the asker's current token
(only the requester may collect it), audited with the request's trace id --
and returns its result, with progress and input requests passed on as for any
call; later asks get the same stored result. An approval covers one call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import mcp_types as types
from mcp import MCPError

from gateway.delegation.approval_store import Approvals
from gateway.delegation.approvals import APPROVED, PENDING, Approval, ApprovalNotFound, NewApproval
from gateway.delegation.coordination import DEFERRED_PREFIX, claiming
from gateway.delegation.deferrals import Deferrals
from gateway.delegation.pipeline import (
    ApprovalRequired,
    Caller,
    CoordinationDeferred,
)
from gateway.delegation.tasks import Owner

STATUS_TOOL = "switchboard__approval_status"
NEEDS_APPROVAL = "needs an admin's approval"
APPROVAL_META = "switchboard/approval"
STATE_PREFIX = "switchboard-approval:"
ASK_KEY = "approval"
STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approval": {"type": "string", "description": "The approval id a held call returned."}
    },
    "required": ["approval"],
    "additionalProperties": False,
}
STATUS_TOOL_DEFINITION = types.Tool(
    name=STATUS_TOOL,
    title="Switchboard: outcome of a call waiting for approval",
    description=(
        "A tool call that needs an admin's approval returns an approval id instead of "
        "a result. Call this with that id to learn whether it was approved; once it is, "
        "this makes the call and returns the tool's result."
    ),
    input_schema=STATUS_SCHEMA,
)

Result = types.CallToolResult | types.InputRequiredResult
# Makes the approved call (the approval's tool, arguments and trace) -> its result.
Run = Callable[[Approval], Awaitable[Result]]


def wanted(params: types.CallToolRequestParams) -> str | None:
    """The approval id a call asks about, if it is a collection (None otherwise)."""
    if params.name == STATUS_TOOL:
        approval = (params.arguments or {}).get("approval")
        if not isinstance(approval, str):
            raise MCPError(types.INVALID_PARAMS, "give the approval id as 'approval'")
        return approval
    state = params.request_state
    if isinstance(state, str) and state.startswith(STATE_PREFIX):
        # The retry of our own input_required answer (2026-07-28): the state
        # came back sealed to this caller by the SDK's RequestStateBoundary.
        return state.removeprefix(STATE_PREFIX)
    meta: Mapping[str, Any] = params.meta or {}
    approval = meta.get(APPROVAL_META)
    return approval if isinstance(approval, str) else None


class McpApprovals:
    def __init__(
        self,
        approvals: Callable[[], Approvals],
        deferrals: Callable[[], Deferrals | None] = lambda: None,
    ) -> None:
        self._approvals = approvals
        self._deferrals = deferrals

    async def hold(
        self,
        pending: ApprovalRequired,
        name: str,
        arguments: Mapping[str, Any] | None,
        *,
        kind: Literal["skill", "tool"],
        output_schema: bool,
        ask: bool = False,
    ) -> Result:
        """Store the call as a pending approval; nothing is called. With ``ask``
        (a 2026-07-28 client that can elicit) the answer is `input_required`."""
        store = self._approvals()
        approval = await store.create(
            NewApproval(
                kind="mcp",
                permit=pending.permit,
                action_kind=kind,
                request={"arguments": dict(arguments or {})},
                tool=name,
            )
        )
        deferrals = self._deferrals()
        if isinstance(pending, CoordinationDeferred) and deferrals is not None:
            # Held back by a coordination rule: released by the gateway when
            # that ends (`gateway.delegation.deferrals`), collected the same way.
            await deferrals.add(approval.id, pending.deferral)
            await store.audit(approval, "mcp", "deferred", pending.deferral.reason[:2000])
        else:
            await store.audit_request(approval, "mcp")
        return _ask(approval) if ask else _pending(approval, is_error=output_schema)

    async def collect(
        self,
        approval_id: str,
        params: types.CallToolRequestParams,
        caller: Caller,
        run: Run,
        *,
        ask: bool = False,
        output_schema: bool = False,
        within: Callable[[str], Awaitable[bool]] | None = None,
    ) -> Result:
        """The outcome of a held call; the approved call is made at the first
        ask. ``within``: whether a tool is in the virtual server asked
        through (`gateway.mcp.sets`); one outside it is no approval there."""
        store = self._approvals()
        approval = await self._callers(approval_id, caller, within)
        arguments = approval.request.get("arguments") or {}
        if params.name != STATUS_TOOL and (
            params.name != approval.tool or dict(params.arguments or {}) != arguments
        ):
            raise MCPError(
                types.INVALID_PARAMS,
                f"approval {approval_id} is for another call ({approval.tool}, other arguments)",
            )
        if approval.state == PENDING:
            if ask and _still_waiting(params):
                return _ask(approval)
            # The user declined to wait (or the client cannot be asked): say
            # how to come back for the outcome instead.
            return _pending(approval, is_error=output_schema and params.name != STATUS_TOOL)
        if approval.state != APPROVED:
            return _refused(approval)
        if approval.outcome not in (None, "running"):
            stored = await store.result(approval_id)
            return types.CallToolResult.model_validate(stored or {"content": []})
        if not await store.claim(approval_id):
            return _note(approval, "running", "the approved call is being made; ask again")
        assert approval.tool is not None
        try:
            with claiming(approval.id):  # the leases reserved for it, if released
                result = await run(approval)
        except BaseException:
            await store.finish(approval_id, None)  # not made: the claim goes back
            raise
        if isinstance(result, types.InputRequiredResult):
            await store.finish(approval_id, None)  # the client answers, then asks again
            return result
        outcome = "tool_error" if result.is_error else "ok"
        stored_result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        await store.finish(approval_id, outcome, stored_result)
        return result

    async def _callers(
        self,
        approval_id: str,
        caller: Caller,
        within: Callable[[str], Awaitable[bool]] | None,
    ) -> Approval:
        """The caller's own MCP approval (one for a tool outside the virtual
        server asked through is none there)."""
        try:
            approval: Approval | None = await self._approvals().get(approval_id)
        except ApprovalNotFound:
            approval = None
        if (
            approval is None
            or approval.kind != "mcp"
            or approval.owner != Owner(caller.subject, caller.issuer)
            or (within is not None and not await within(approval.tool or ""))
        ):
            raise MCPError(types.INVALID_PARAMS, f"no approval {approval_id}")
        return approval


def _note(
    approval: Approval, state: str, text: str, *, is_error: bool = False
) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={"approval": approval.id, "state": state},
        is_error=is_error,
    )


def _waits_for(approval: Approval, otherwise: str = "awaits an admin's approval") -> str:
    """What a held call waits for, as the caller is told it."""
    reasons = approval.reasons
    if reasons and reasons[0].startswith(DEFERRED_PREFIX):
        return f"is deferred ({reasons[0]}); it is made once that ends"
    return otherwise


def _pending(approval: Approval, *, is_error: bool) -> types.CallToolResult:
    text = (
        f"{approval.tool} {_waits_for(approval)} (approval {approval.id}); nothing was "
        f"called yet. Ask for the outcome with the tool {STATUS_TOOL} "
        f'{{"approval": "{approval.id}"}}, or call {approval.tool} again with the same '
        f'arguments and _meta {{"{APPROVAL_META}": "{approval.id}"}}.'
    )
    return _note(approval, PENDING, text, is_error=is_error)


def _ask(approval: Approval) -> types.InputRequiredResult:
    """ "Pending", the 2026-07-28 way: an `input_required` result (multi
    round-trip requests). Its one question asks the user whether to keep
    waiting; the client retries the same call with the answer and the request
    state, and each retry asks again until an admin has decided. Declining
    ends the wait with the pending result, approval id and all."""
    question = types.ElicitRequest(
        params=types.ElicitRequestFormParams(
            message=(
                f"{approval.tool} {_waits_for(approval, NEEDS_APPROVAL)} "
                f"(approval {approval.id}); "
                "nothing was called yet. Accept to check again, decline to stop waiting."
            ),
            requested_schema={"type": "object", "properties": {}},
        )
    )
    return types.InputRequiredResult(
        input_requests={ASK_KEY: question}, request_state=STATE_PREFIX + approval.id
    )


def _still_waiting(params: types.CallToolRequestParams) -> bool:
    """Whether the caller asked to keep waiting: a first ask by id, or an
    accepted answer to our question (a decline or cancel stops the asking)."""
    answer = (params.input_responses or {}).get(ASK_KEY)
    if answer is None:
        return params.request_state is None or not params.request_state.startswith(STATE_PREFIX)
    return isinstance(answer, types.ElicitResult) and answer.action == "accept"


def _refused(approval: Approval) -> types.CallToolResult:
    text = f"{approval.tool} was not called: the request was {approval.state}"
    if approval.decided_by and approval.state != "withdrawn":
        text += f" by {approval.decided_by}"
    if approval.reason:
        text += f": {approval.reason}"
    result = _note(approval, approval.state, text, is_error=True)
    if approval.reason and result.structured_content is not None:
        result.structured_content["reason"] = approval.reason
    return result
