"""`/ui/try`: the playground -- a user asks an agent or calls an MCP tool, as
themselves, and sees the answer, the task and the trace.

Nothing here decides or calls on its own. The call is the logged-in user's
(`ConsoleUser.principal()`: their subject, issuer and scopes) and goes the
way a door's does:

* an agent: the A2A door's admission (`gateway.a2a.admit`: the skill decided
  from the message, then `Delegations.admit` -- the policy, the rate
  limits, the coordination rules, the token minted for the user, a refusal
  audited) and then the agents' own handler (`Agents.handler_for`: send
  under the breaker, record the task and the audit), or the approvals
  handler for a call held for a human. A refusal is the door's (its status
  and its words), under the same audit event;
* an MCP tool: the federation's `call_tool`, as `/mcp` and a flow step call
  it; a call held for approval is stored by `/mcp`'s own `McpApprovals`.

Every call gets a fresh trace id (`adapters.trace_context.begin`), shown with
the answer; admins get a link to the trace's audit page. The console's
bounds: a message of `MAX_MESSAGE_CHARS`, JSON of `MAX_JSON_BYTES` nested at
most `MAX_JSON_DEPTH` deep, and no call longer than the gateway's own upstream
timeout (plus the time to connect). Nothing changes on a GET: the links
"Try" on an agent's and a server's pages only fill the form in.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from a2a.types import Message, SendMessageRequest, Task
from a2a.utils.errors import A2AError, InvalidParamsError
from fastapi import APIRouter, Request, Response

from adapters.trace_context import begin as begin_trace
from gateway.a2a.admit import Admitted, Refusal, admit_call, decide_skill
from gateway.a2a.responses import denial_response
from gateway.agents.admission import FrontDoorParts, handler_context
from gateway.agents.startup import Agents
from gateway.api import agents as agents_api
from gateway.api import mcp_servers as mcp_api
from gateway.api.state import state_of
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.console.sessions import ConsoleUser
from gateway.console.try_answers import Shown, shown_message, shown_result, shown_task
from gateway.console.web import PREFIX, ConsoleError, ConsoleRoute, current_user, page, posted
from gateway.delegation.call import MessageSkill
from gateway.delegation.handoffs import stamp_skill
from gateway.delegation.pipeline import ApprovalRequired, Caller, DelegationDenied
from gateway.delegation.tasks import Owner
from gateway.delegation.upstream_failures import UpstreamTimeoutError, UpstreamUnavailableError
from gateway.federation.federated_tools import ToolNotFound, ToolQuarantined
from gateway.http.json_body import JsonRefused, TooDeep, read_json
from gateway.mcp.agent_tools import user_message
from gateway.mcp.approvals import McpApprovals
from gateway.mcp.auth import missing_mcp_scopes
from registry.mcp_models import McpServerRecord, ToolState
from registry.models import AgentQuery
from registry.store import AgentNotFound

router = APIRouter(prefix=PREFIX + "/try", route_class=ConsoleRoute, include_in_schema=False)
MAX_MESSAGE_CHARS = 16_000
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 20
AGENT_CHOICES = 200  # the most agents offered in the form's list (any id may be typed)
NOT_MADE = "The call was not made"


def agents_of(request: Request) -> Agents:
    """The handlers every door reaches agents through (`gateway.app` hands them in)."""
    agents: Agents = request.app.state.console_agents
    return agents


# The form ----------------------------------------------------------------------------


@router.get("")
async def try_page(
    request: Request,
    agent: str | None = None,
    skill: str | None = None,
    tool: str | None = None,
) -> Response:
    """The form, filled in from the query (an agent and skill, or a tool)."""
    user = await current_user(request)
    principal = user.principal()
    listed = await agents_api.list_agents(request, principal, AgentQuery(limit=AGENT_CHOICES))
    chosen = await agents_api.get_agent(request, agent, principal) if agent else None
    tools = await _tools(request, user)
    definition = None
    if tool:
        definition = next((d for name, d in tools if name == tool), None)
        if definition is None:
            raise ToolNotFound(tool)  # as `GET /mcp-servers` would not show it
    return page(
        request,
        user,
        "try.html",
        agents=listed.items,
        chosen=chosen,
        skill=skill or "",
        tools=[name for name, _ in tools],
        tool=tool or "",
        definition=definition,
        limits={"message": MAX_MESSAGE_CHARS, "json": MAX_JSON_BYTES, "depth": MAX_JSON_DEPTH},
    )


async def _tools(request: Request, user: ConsoleUser) -> list[tuple[str, dict[str, Any]]]:
    """The tools the user may call, by their name on `/mcp`: what their
    `GET /mcp-servers` shows them (an admin: the approved ones still offered)."""
    if _missing_scopes(request, user):
        return []  # `/mcp` itself would not take this user's calls
    found = await mcp_api.list_servers(request, user.principal())
    tools: list[tuple[str, dict[str, Any]]] = []
    for server in found.items:
        if isinstance(server, McpServerRecord):
            tools += [
                (t.namespaced, t.definition)
                for t in server.tools
                if t.state == ToolState.APPROVED and t.available
            ]
        else:
            tools += [(t.namespaced, t.definition) for t in server.tools]
    return sorted(tools, key=lambda t: t[0])


# Asking an agent ---------------------------------------------------------------------


@router.post("/agent")
async def ask_agent(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    agent_id = form.get("agent", "").strip()
    if not agent_id:
        raise ConsoleError(422, NOT_MADE, "agent: which agent?")
    text = _bounded_text(form.get("message", ""))
    data = _json_field(form, "data")
    if data is not None and not isinstance(data, dict):
        raise ConsoleError(422, NOT_MADE, "data: a JSON object, {...}")
    if not text and data is None:
        raise ConsoleError(422, NOT_MADE, "message: give a message, data, or both")
    params = _message(text, data, form.get("skill", "").strip() or None)
    trace_id = begin_trace(None)  # the user's own trace: never one a browser named
    shown = await _send(request, user, agent_id, params, trace_id)
    return _answer(request, user, shown, trace_id, agent=agent_id)


def _message(text: str, data: dict[str, Any] | None, skill: str | None) -> SendMessageRequest:
    params = SendMessageRequest(message=user_message(text, data))
    stamp_skill(params, skill)  # the one place the form names it
    return params


async def _send(
    request: Request, user: ConsoleUser, agent_id: str, params: SendMessageRequest, trace_id: str
) -> Shown:
    """The A2A door's admission, then the agent's handler (or the approvals
    handler, for a call held for a human): `on_message_send` as the door's
    SendMessage makes it."""
    agents = agents_of(request)
    parts = agents.front_door_parts()
    caller = Caller.user(user.principal())
    owner = Owner(caller.subject, caller.issuer, caller)
    delegations = parts.delegations
    try:
        decided, inputs = await decide_skill(delegations, parts.tasks, agent_id, owner, params)
    except InvalidParamsError as refused:
        # Before any decision (a skill the card lacks): audited as the door does.
        await delegations.refused(
            caller, agent_id, event="a2a", trace_id=trace_id, reason=str(refused.message)
        )
        raise ConsoleError(422, NOT_MADE, f"skill: {refused.message}") from None
    said: ConsoleError | None = None
    async with contextlib.AsyncExitStack() as call:  # the call, held open
        try:
            admitted = await _admitted(
                parts, call, caller, agent_id, trace_id, owner, decided, inputs
            )
            held = admitted.route == "approval"
            answer = await _asked(request, agents, admitted, params, agent_id)
        except ConsoleError as exc:
            # An answer, as the other doors' error responses are: it closes
            # the call as an answer does (what the handler recorded stands).
            said = exc
    if said is not None:
        raise said
    return shown_task(answer, held) if isinstance(answer, Task) else shown_message(answer)


async def _asked(
    request: Request, agents: Agents, admitted: Admitted, params: SendMessageRequest, agent_id: str
) -> Task | Message:
    """The admitted message sent through its handler (the approvals
    handler's, for a call held for a human); its failures as the console
    says them."""
    admission = admitted.admission
    held = admitted.route == "approval"
    handler = agents.approvals if held else agents.handler_for(admission.grant.card)
    own = admission.grant.agent.timeout_seconds or 0.0
    try:
        async with asyncio.timeout(_bound(request, own)):
            answer: Task | Message = await handler.on_message_send(
                params, handler_context(admission)
            )
    except TimeoutError:
        raise ConsoleError(
            504, "No answer in time", f"{agent_id} did not answer within the gateway's timeout"
        ) from None
    except UpstreamTimeoutError as exc:
        raise ConsoleError(504, "The agent did not answer in time", exc.message) from None
    except UpstreamUnavailableError as exc:
        raise ConsoleError(502, "The agent could not be reached", exc.message) from None
    except InvalidParamsError as exc:
        raise ConsoleError(422, "The agent's contract refused the message", exc.message) from None
    except A2AError as exc:
        raise ConsoleError(502, "The agent answered with an error", exc.message) from None
    return answer


async def _admitted(
    parts: FrontDoorParts,
    call: contextlib.AsyncExitStack,
    caller: Caller,
    agent_id: str,
    trace_id: str,
    owner: Owner,
    decided: MessageSkill,
    inputs: list[Any] | None,
) -> Admitted:
    """The A2A door's admission of the message, held open in ``call``."""
    try:
        return await admit_call(
            parts.delegate,
            call,
            caller,
            agent_id,
            trace_id,
            owner,
            message=True,
            decided=decided,
            inputs=inputs,
            extensions=frozenset(),
            others=None,
            approvals=True,
            consents=parts.consents,
        )
    except Refusal as refused:
        if refused.status == 404:
            raise AgentNotFound(agent_id) from None  # said as `GET /agents/{id}` says it
        raise ConsoleError(refused.status, "Refused", refused.message) from None


def _bound(request: Request, own: float = 0.0) -> float:
    """How long the console waits for one call: the gateway's own upstream
    timeout (or the target's, if longer), plus the time to connect."""
    settings = state_of(request).settings
    connect = max(settings.upstream_connect_timeout_seconds, settings.mcp_connect_timeout_seconds)
    return max(settings.upstream_timeout_seconds, own) + connect


# Calling a tool ----------------------------------------------------------------------


@router.post("/tool")
async def call_tool(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    name = form.get("tool", "").strip()
    if not name:
        raise ConsoleError(422, NOT_MADE, "tool: which tool?")
    arguments = _json_field(form, "arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ConsoleError(422, NOT_MADE, "arguments: a JSON object, {...}")
    if missing := _missing_scopes(request, user):
        said = f"the MCP endpoint needs the scopes {' '.join(missing)}, which you lack"
        raise ConsoleError(403, "Insufficient scope", said)
    trace_id = begin_trace(None)
    caller = Caller.user(user.principal())
    federation = state_of(request).mcp
    try:
        async with asyncio.timeout(_bound(request)):
            result = await federation.call_tool(name, arguments, caller=caller, trace_id=trace_id)
    except TimeoutError:
        raise ConsoleError(
            504, "No answer in time", f"{name} did not answer within the gateway's timeout"
        ) from None
    except ApprovalRequired as pending:  # held for a human (or a coordination rule)
        held = await _approvals(request).hold(
            pending, name, arguments, kind="tool", output_schema=False
        )
        return _answer(request, user, shown_result(held, held=True), trace_id, tool=name)
    except DelegationDenied as denied:
        raise denial_response(denied, _refused) from None
    except ToolQuarantined as exc:
        raise ConsoleError(409, "The tool is waiting for review", str(exc)) from None
    except ConnectionRequired as needed:
        raise ConsoleError(403, NOT_MADE, f"{needed}; connect at {needed.connect_url}") from None
    except UserCredentialUnavailable as exc:
        raise ConsoleError(403, NOT_MADE, str(exc)) from None
    # ToolNotFound and the upstream's failures are the API's own problems.
    return _answer(request, user, shown_result(result), trace_id, tool=name)


def _missing_scopes(request: Request, user: ConsoleUser) -> list[str]:
    """What `/mcp` asks of every caller (`mcp_required_scopes`) that the user lacks."""
    required = state_of(request).settings.mcp_required_scopes
    return missing_mcp_scopes(required, user.principal())


def _approvals(request: Request) -> McpApprovals:
    """`/mcp`'s way of holding a tool call, over this app's approval desk."""
    desk = state_of(request).approvals
    return McpApprovals(lambda: desk.parts.approvals, lambda: desk.parts.deferrals)


def _refused(
    status: int, message: str, data: Any = None, headers: dict[str, str] | None = None
) -> ConsoleError:
    """A denial as the A2A door states it (its status and words), as a page."""
    return ConsoleError(status, "Refused", message)


# Shared ------------------------------------------------------------------------------


def _answer(
    request: Request,
    user: ConsoleUser,
    shown: Shown,
    trace_id: str,
    *,
    agent: str = "",
    tool: str = "",
) -> Response:
    return page(
        request, user, "try_answer.html", shown=shown, trace_id=trace_id, agent=agent, tool=tool
    )


def _bounded_text(text: str) -> str:
    if len(text) > MAX_MESSAGE_CHARS:
        raise ConsoleError(422, NOT_MADE, f"message: longer than {MAX_MESSAGE_CHARS} characters")
    return text


def _json_field(form: dict[str, str], name: str) -> Any:
    """The form's field ``name`` read as JSON (None: left empty), within the
    console's bounds; anything else is a 422 page naming the field. Its
    integers are ones a double carries exactly: a message's data is a
    protobuf `Value`."""
    raw = form.get(name, "").strip()
    if not raw:
        return None
    body = raw.encode("utf-8", "surrogatepass")
    if len(body) > MAX_JSON_BYTES:
        raise ConsoleError(422, NOT_MADE, f"{name}: larger than {MAX_JSON_BYTES} bytes")
    try:
        return read_json(body, MAX_JSON_DEPTH, exact_ints=True)
    except TooDeep:
        raise ConsoleError(
            422, NOT_MADE, f"{name}: nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except JsonRefused as exc:
        raise ConsoleError(422, NOT_MADE, f"{name}: not JSON ({exc})") from None
