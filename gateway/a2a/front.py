"""The A2A front door: every registered agent, served by the gateway as if it
were the agent, in A2A 1.0 and 0.3, over JSON-RPC and HTTP+JSON.

The protocol work is the official SDK's: its route factories parse the
request (either version, either binding), validate it, and encode answers,
errors and SSE streams; this module is the `RequestHandler` behind them. Each
operation runs the one pipeline (docs/architecture.md, "One delegated call"):

1. `admit()` runs before the SDK sees the request: authenticate the caller,
   look up the agent, decide and mint (`Delegations.admit`). A refusal is
   an HTTP error in the caller's binding and never reaches the agent.
2. The handler checks task ownership in the gateway's records (`TaskRecords`):
   someone else's task or context is "task not found".
3. The SDK client transport for the agent's own version and binding calls it
   with the minted token (`adapters.a2a`); the SDK translates 0.3 <-> 1.0.
4. Tasks seen in the answer are recorded for their owner; every operation is
   audited with its outcome, failures included.

Upstream failures become A2A errors: an unreachable agent or a timeout is
InternalError (-32603) naming the agent; an answer that is not A2A is
InvalidAgentResponseError (-32006); an A2A error from the agent passes
through with its own code.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

from a2a.extensions.common import HTTP_EXTENSION_HEADER, get_requested_extensions
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
)
from a2a.types import (
    AgentCard,
)
from a2a.utils.errors import (
    InvalidParamsError,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters import spans
from adapters.semconv import a2a_server_facts
from adapters.trace_context import begin as begin_trace
from gateway.a2a.admit import Admitted, Refusal, admit_call, decide_skill
from gateway.a2a.gateway_handler import GatewayHandler
from gateway.a2a.held_calls import HeldCall, HeldEndpoint
from gateway.a2a.responses import (
    card_response,
    invalid_params,
    jsonrpc_body,
    jsonrpc_refusal,
    parse_jsonrpc_body,
    request_id_of,
    rest_refusal,
    with_null_result,
    with_parsed_body,
)
from gateway.a2a.versions import version_of
from gateway.agents.admission import Admission
from gateway.agents.cards import card_json
from gateway.agents.handler import AgentHandler
from gateway.agents.outages import (
    OutageNote,
    current_note,
    note_admission,
    note_caller,
    outage_record,
    outage_response,
    retry_after,
)
from gateway.delegation.call import MessageSkill
from gateway.delegation.pipeline import (
    Caller,
)
from gateway.delegation.tasks import Owner
from gateway.http.auth import current_principal, front_door_principal
from gateway.http.problems import Problem, problem_response
from gateway.storage.outages import outage_of
from policies.tokens import TokenInvalid


class OtherAgents(Protocol):
    """Targets served at `/a2a/{id}` that are not A2A agents (`gateway.federation.as_a2a`:
    MCP servers). They share the agents' id space, so an id names one or the
    other; the agents are looked up first."""

    @property
    def handler(self) -> RequestHandler:
        """The SDK handler that serves them."""

    async def admission(self, agent_id: str, caller: Caller, trace_id: str) -> Any | None:
        """What the handler reads from the call context, or None: no such target."""

    async def card(self, agent_id: str, url: str) -> tuple[AgentCard, datetime | None] | None:
        """The target's card (unsigned) and when it last changed, or None."""


class GatewayRunAgents(Protocol):
    """Registered agents the gateway runs itself (`gateway.agents.vendor`: OpenAI-
    compatible and REST webhook upstreams). They are agents -- admitted, listed
    and decided like any other -- whose card carries the gateway-run mark; their
    calls go to this handler instead of an A2A upstream."""

    @property
    def handler(self) -> RequestHandler:
        """The SDK handler that serves them."""

    def serves(self, card: dict[str, Any]) -> bool:
        """Whether the agent with this (stored) card is run by the gateway."""


class PassThroughPath(Protocol):
    """Answers a request itself, or returns None to leave it to the SDK's
    dispatcher (`gateway.agents.passthrough.PassThrough`): JSON-RPC, or the
    HTTP+JSON binding when not ``jsonrpc``."""

    async def __call__(
        self, request: Request, admission: Admission, body: Any, *, jsonrpc: bool = True
    ) -> Response | None: ...


Endpoint = Callable[[Request], Awaitable[Response]]
E = TypeVar("E", Endpoint, HeldEndpoint)
# The operations that send a message, in both versions' spellings.
_MESSAGE_METHODS = frozenset(
    {"SendMessage", "SendStreamingMessage", "message/send", "message/stream"}
)
_MESSAGE_PATHS = ("/message:send", "/message:stream")


class _Unparseable(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class _SkillRefused(Exception):
    def __init__(self, error: InvalidParamsError, response: Response) -> None:
        self.error = error
        self.response = response


class A2AFrontDoor:
    """What runs around the SDK's dispatchers at `/a2a/{agent_id}`: admission,
    the handler a request goes to, outages; its routes: `gateway.a2a.routes`."""

    def __init__(
        self,
        handler: AgentHandler,
        gateway: GatewayHandler,
        *,
        pass_through: PassThroughPath | None = None,
        others: OtherAgents | None = None,
        gateway_run: GatewayRunAgents | None = None,
        approvals: RequestHandler | None = None,
    ) -> None:
        self.handler = handler
        self.gateway = gateway
        self.pass_through = pass_through
        self.others = others
        self.gateway_run = gateway_run
        # Serves agents whose calls wait for a human (`gateway.agents.approvals`).
        self.approvals = approvals

    async def admitted(
        self, request: Request, jsonrpc: bool, held: AsyncExitStack
    ) -> Response | Admitted:
        """The request admitted, its call held open in ``held`` (also kept on
        ``request.state.admission`` for the SDK's handler,
        `gateway.agents.admission`), or the answer that refuses it."""
        refuse = jsonrpc_refusal if jsonrpc else rest_refusal
        agent_id = request.path_params["agent_id"]
        caller = await self._caller(request, agent_id)
        if isinstance(caller, Response):
            return caller
        if jsonrpc and await parse_jsonrpc_body(request) is None:
            wrong = version_of(request, jsonrpc_body(request))  # before anything reads the header
            if wrong is not None:
                return wrong
        trace_id = begin_trace(request.headers)
        # The server span in A2A's terms too (a2a.md "Server": a2a.method.name).
        # (A body that did not parse is None: `parse_jsonrpc_body`.)
        body = jsonrpc_body(request) if jsonrpc else None
        spans.annotate(a2a_server_facts(agent_id, body))
        owner = Owner(caller.subject, caller.issuer, caller)
        try:
            message, decided, inputs = await self._skill(request, jsonrpc, agent_id, owner)
        except _Unparseable as refusal:
            return refusal.response
        except _SkillRefused as refused:
            # Before any decision: nothing to decide for, nothing is called.
            await self.handler.delegations.refused(
                caller, agent_id, event="a2a", trace_id=trace_id, reason=str(refused.error)
            )
            return refused.response
        if jsonrpc:  # the body is parsed by now: refusals keep the request's id
            refuse = functools.partial(jsonrpc_refusal, request_id=request_id_of(request))
        extensions = get_requested_extensions(request.headers.getlist(HTTP_EXTENSION_HEADER))
        try:
            admitted = await admit_call(
                self.handler.delegate,
                held,
                caller,
                agent_id,
                trace_id,
                owner,
                message=message,
                decided=decided,
                inputs=inputs,
                extensions=frozenset(extensions),
                others=self.others,
                approvals=self.approvals is not None,
                consents=self.handler._parts().consents,
            )
        except Refusal as refused:
            return refuse(refused.status, refused.message, refused.data, refused.headers or None)
        request.state.admission = admitted.admission
        if isinstance(admitted.admission, Admission):  # not `others`': its record is the caller's
            note_admission(admitted.admission)
        return admitted

    async def _caller(self, request: Request, agent_id: str) -> Caller | Response:
        """Who calls: a token for the gateway, or one it minted for this
        agent's front door (an onward call); or the answer refusing it."""
        public_url = self.handler._parts().public_url
        try:
            principal, onwards = await front_door_principal(request, f"{public_url}/a2a/{agent_id}")
        except Problem as problem:
            return problem_response(problem)
        except TokenInvalid as exc:  # a malformed act claim
            return problem_response(Problem(401, "invalid-token", "Invalid token", str(exc)))
        caller = Caller.delegated(principal) if onwards else Caller.user(principal)
        note_caller(caller)  # an outage from here on is this caller's refusal
        return caller

    async def _skill(
        self, request: Request, jsonrpc: bool, agent_id: str, owner: Owner
    ) -> tuple[bool, MessageSkill, list[Any] | None]:
        """Whether the request sends a message, and what it is for
        (`gateway.delegation.handoffs.message_skill`: from every place the
        caller's JSON can name a skill, or -- continuing one of the caller's
        tasks -- the task's), so that the decision is the skill's own: a
        `require` or `approval` on one skill applies to the call, not only to
        listings. Reading or cancelling one's own task is decided for the
        agent. A message naming no skill, to an agent with several, is decided
        as for the strictest (`Delegations.admit`, `Call.message`). Places that name
        different skills, a skill the card lacks, a skill other than the
        continued task's or two task ids raise `_SkillRefused`. And what the
        message hands the agent, for the coordination rules (`json_inputs`)."""
        request_id: Any = None
        legacy = False
        unsaid = MessageSkill(None)
        if jsonrpc:
            refused = await parse_jsonrpc_body(request)
            if refused is not None:
                raise _Unparseable(refused)
            body = jsonrpc_body(request)
            if not isinstance(body, dict) or body.get("method") not in _MESSAGE_METHODS:
                return False, unsaid, None
            params = body.get("params")
            request_id = body.get("id")
            legacy = "/" in str(body.get("method"))
        else:
            if not request.url.path.endswith(_MESSAGE_PATHS) or request.method != "POST":
                return False, unsaid, None
            try:
                params = json.loads(await request.body())
            except (ValueError, RecursionError):
                return True, unsaid, None  # the SDK answers it
        if not isinstance(params, dict):
            return True, unsaid, None  # the SDK answers it
        try:
            decided, inputs = await decide_skill(
                self.handler.delegations, self.handler.tasks, agent_id, owner, params
            )
        except InvalidParamsError as error:
            raise _SkillRefused(error, invalid_params(error, jsonrpc, request_id, legacy)) from None
        return True, decided, inputs

    def guarded(
        self,
        endpoint: Endpoint,
        other_endpoint: Endpoint | None,
        *,
        jsonrpc: bool,
        run_endpoint: Endpoint | None = None,
        approval_endpoint: Endpoint | None = None,
    ) -> HeldCall:
        async def guarded(request: Request, held: AsyncExitStack) -> Response:
            admitted = await self.admitted(request, jsonrpc, held)
            if isinstance(admitted, Response):
                return admitted
            refused = await parse_jsonrpc_body(request) if jsonrpc else None
            if refused is not None:
                return refused
            chosen = endpoint
            if approval_endpoint is not None and admitted.route == "approval":
                chosen = approval_endpoint
            elif admitted.route == "other":
                assert other_endpoint is not None
                chosen = other_endpoint
            elif (
                run_endpoint is not None
                and self.gateway_run is not None
                and self.gateway_run.serves(admitted.admission.grant.card)
            ):
                chosen = run_endpoint
            elif self.pass_through is not None:
                body = jsonrpc_body(request) if jsonrpc else None
                passed = await self.pass_through(request, admitted.admission, body, jsonrpc=jsonrpc)
                if passed is not None:
                    return passed
            return await chosen(with_parsed_body(request))

        return HeldCall(self.outage_guard(guarded, jsonrpc=jsonrpc))

    def outage_guard(self, endpoint: E, *, jsonrpc: bool) -> E:
        """A dependency outage, met here or in a handler (`gateway.agents.outages`),
        answered 503 with `Retry-After` in the binding's error form, and audited.
        (What follows the request goes on to ``endpoint``: the call it holds.)"""

        async def guarded(request: Request, *held: Any) -> Response:
            note = OutageNote()
            token = current_note.set(note)
            try:
                response = await endpoint(request, *held)
                if jsonrpc:
                    response = with_null_result(request, response)
            except Exception as exc:
                outage = outage_of(exc)
                if outage is None:
                    raise
                note.outage = outage
                body = jsonrpc_body(request)
                request_id = body.get("id") if isinstance(body, dict) else None
                response = outage_response(outage, jsonrpc=jsonrpc, request_id=request_id)
            finally:
                current_note.reset(token)
            if note.outage is not None:
                if isinstance(response, JSONResponse):  # not a stream already under way
                    response.status_code = 503
                response.headers.update(retry_after(note.outage))
                await self._audit_outage(request, note)
            return response

        return cast(E, guarded)

    async def _audit_outage(self, request: Request, note: OutageNote) -> None:
        assert note.outage is not None
        agent_id = request.path_params.get("agent_id")
        event = outage_record(note.admission, agent_id, note.outage, request.headers, note.caller)
        # Kept in the audit buffer until the database takes it (or logged).
        await self.handler.delegations.record_event(event)

    async def agent_card(self, request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        legacy = request.url.path.endswith("/agent.json")
        found = await self.handler.delegations.agents.get_with_card(agent_id)
        if found is not None:
            card = await self.handler.card_for(agent_id, found[1])
            return card_response(request, card_json(card, legacy=legacy), found[0].updated_at)
        if self.others is not None:
            parts = self.handler._parts()
            other = await self.others.card(agent_id, f"{parts.public_url}/a2a/{agent_id}")
            if other is not None:
                card = await parts.sign(other[0])
                return card_response(request, card_json(card, legacy=legacy), other[1])
        return rest_refusal(404, f"no agent {agent_id}")

    async def gateway_card(self, request: Request) -> Response:
        card = await self.gateway.card()
        legacy = request.url.path.endswith("/agent.json")
        return card_response(request, card_json(card, legacy=legacy), None)

    def authenticated(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def authenticated(request: Request) -> Response:
            try:
                request.state.principal = await current_principal(request)
            except Problem as problem:
                return problem_response(problem)
            refused = await parse_jsonrpc_body(request)
            return refused if refused is not None else await endpoint(with_parsed_body(request))

        return authenticated
