"""The A2A front door: every registered agent, served by the gateway as if it
were the agent, in A2A 1.0 and 0.3, over JSON-RPC and HTTP+JSON.

The protocol work is the official SDK's: its route factories parse the
request (either version, either binding), validate it, and encode answers,
errors and SSE streams; this module is the `RequestHandler` behind them. Each
operation runs the one pipeline (DESIGN.md, "one delegated call"):

1. `admit()` runs before the SDK sees the request: authenticate the caller,
   look up the agent, decide and mint (`Delegations.authorize`). A refusal is
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

import asyncio
import contextlib
import functools
import inspect
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Protocol, TypeVar

import aiohttp
import httpx
from a2a.auth.user import User
from a2a.client.errors import A2AClientError, A2AClientTimeoutError
from a2a.client.transports.base import ClientTransport
from a2a.extensions.common import HTTP_EXTENSION_HEADER, get_requested_extensions
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
    validate_request_params,
)
from a2a.server.routes import create_jsonrpc_routes, create_rest_routes
from a2a.server.routes.common import ServerCallContextBuilder
from a2a.types import (
    AgentCard,
    AgentSkill,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.constants import VERSION_HEADER
from a2a.utils.errors import (
    A2AError,
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidAgentResponseError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import validate_history_length
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from adapters.a2a import A2AUpstreams, NoUsableInterface, UpstreamEndpoint
from adapters.http import UpstreamBadAnswer, UpstreamRefused
from adapters.trace_context import begin as begin_trace
from gateway.a2a.cards import card_json, etag, gateway_card, proxied_card, sign_card
from gateway.delegation import retry
from gateway.delegation.breaker import BreakerOpen, Breakers
from gateway.delegation.handoffs import Resilience, breaker_error, contract_refusal, skill_of
from gateway.delegation.pipeline import (
    ApprovalRequired,
    Caller,
    DelegationDenied,
    Delegations,
    Grant,
)
from gateway.delegation.push import (
    CredentialsUnavailable,
    PushRelays,
    RelayRefused,
    header_problem,
    parse_notification,
)
from gateway.delegation.retry import Attempts, Failure
from gateway.delegation.tasks import Owner, TaskRecords
from gateway.http.auth import current_principal, front_door_principal
from gateway.http.problems import Problem, problem_response
from policies.keys import SigningKey
from policies.policy import Target
from policies.tokens import Principal, TokenInvalid
from registry.fetch import FetchError, SafeFetcher
from registry.store import AgentNotFound, card_skills
from registry.tables import as_utc

logger = logging.getLogger(__name__)
T = TypeVar("T")
RequestHandlerT = TypeVar("RequestHandlerT", bound=RequestHandler)

ADMISSION = "switchboard.admission"
PRINCIPAL = "switchboard.principal"
# Implementation-defined server error (JSON-RPC reserves -32000..-32099; A2A
# uses -32001..-32009): the gateway refused to delegate.
DELEGATION_REFUSED = -32000


@dataclass(frozen=True)
class Admission:
    """What `admit()` established for one request, read by the handler."""

    grant: Grant
    owner: Owner
    extensions: frozenset[str]
    # Set by the pass-through when it found the agent down and the policy names
    # a fallback: the SDK path then hands the message over without calling.
    down: A2AError | None = None

    @property
    def agent_id(self) -> str:
        return self.grant.agent.id


@dataclass(frozen=True)
class StreamLimits:
    max_seconds: float


class _GatewayUser(User):
    def __init__(self, subject: str) -> None:
        self._subject = subject

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self._subject


def _call_context(
    request: Request,
    subject: str,
    key: str,
    value: Any,
    extensions: frozenset[str] = frozenset(),
) -> ServerCallContext:
    version = request.headers.get(VERSION_HEADER)
    return ServerCallContext(
        user=_GatewayUser(subject),
        state={key: value, "headers": {VERSION_HEADER.lower(): version} if version else {}},
        requested_extensions=set(extensions),
    )


def handler_context(admission: Admission) -> ServerCallContext:
    """A call context for running `AgentHandler` from inside the gateway (the
    MCP front end's agent tools): the admission, and no caller headers."""
    return ServerCallContext(
        user=_GatewayUser(admission.owner.subject),
        state={ADMISSION: admission, "headers": {}},
        requested_extensions=set(admission.extensions),
    )


class _ContextBuilder(ServerCallContextBuilder):
    """The call context carries the admission and, of the caller's headers, only
    `A2A-Version`, which the SDK's version check reads (its default builder
    copies every header, the caller's token included)."""

    def build(self, request: Request) -> ServerCallContext:
        admission: Admission = request.state.admission
        return _call_context(
            request, admission.owner.subject, ADMISSION, admission, admission.extensions
        )


def admission_of(context: ServerCallContext | None) -> Admission:
    """The front door's admission of the request this handler call serves."""
    assert context is not None
    admission: Admission = context.state[ADMISSION]
    return admission


def upstream_error(agent_id: str, exc: BaseException, timeout: float | None) -> A2AError:
    """Map a client-side failure to the A2A error the caller gets.

    The cause chain is read whole before deciding: an SSRF refusal reaches us
    wrapped as a connection error (resolver -> aiohttp -> httpx -> SDK), and
    the refusal is what the caller needs to hear about.
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 16:
        chain.append(cause)
        cause = cause.__cause__

    def first(kind: type[BaseException] | tuple[type[BaseException], ...]) -> Any:
        return next((c for c in chain if isinstance(c, kind)), None)

    if (refused := first(UpstreamRefused)) is not None:
        return InternalError(f"agent {agent_id} may not be called: {refused}")
    if (bad := first(UpstreamBadAnswer)) is not None:
        return InvalidAgentResponseError(f"agent {agent_id}: {bad}")
    # httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout;
    # when aiohttp's own error is in the chain, it is the one that says.
    aio = first(aiohttp.ClientError)
    timeouts = (httpx.TimeoutException, A2AClientTimeoutError, TimeoutError)
    if isinstance(aio, TimeoutError) or (aio is None and first(timeouts) is not None):
        limit = f" within {timeout:g} s" if timeout else ""
        return InternalError(f"agent {agent_id} did not answer{limit}")
    if (status := first(httpx.HTTPStatusError)) is not None:
        return InvalidAgentResponseError(
            f"agent {agent_id} answered HTTP {status.response.status_code}"
        )
    if first((httpx.TransportError, aiohttp.ClientError, OSError)) is not None:
        return InternalError(f"agent {agent_id} could not be reached ({_transport_failure(chain)})")
    if isinstance(exc, A2AClientError):
        return InvalidAgentResponseError(f"agent {agent_id} sent an invalid answer: {exc}")
    if isinstance(exc, A2AError):
        return exc  # the agent's own A2A error, with its code
    return InvalidAgentResponseError(f"agent {agent_id} sent an invalid answer")


def _transport_failure(chain: list[BaseException]) -> str:
    """Say what failed in words that do not depend on the HTTP library."""
    connect = (httpx.ConnectError, httpx.ConnectTimeout, aiohttp.ClientConnectorError)
    lost = (httpx.RemoteProtocolError, httpx.ReadError, aiohttp.ServerDisconnectedError)
    for cause in reversed(chain):  # the deepest cause is the real one
        if isinstance(cause, connect):
            return "connection failed"
        if isinstance(cause, lost):
            return "connection lost"
    return "transport error"


async def list_own_tasks(
    tasks: TaskRecords, agent_id: str, owner: Owner, params: ListTasksRequest
) -> ListTasksResponse:
    """`ListTasks` from the gateway's records: only ``owner``'s tasks."""
    try:
        page = await tasks.list(agent_id, owner, params)
    except ValueError as exc:  # a bad pageToken (InvalidPageToken) or bound
        raise InvalidParamsError(str(exc)) from None
    if not params.include_artifacts:
        for task in page.tasks:
            task.ClearField("artifacts")
    return page


class AgentDown(Exception):
    """The agent is down (see `AgentHandler._call`); not audited yet."""

    def __init__(self, error: A2AError, tried: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.tried = tried


def tried_note(attempts: Attempts) -> str:
    return f"; after {attempts.made} attempts" if attempts.made > 1 else ""


def _report(breakers: Breakers, agent_id: str, exc: BaseException) -> None:
    if retry.counts_against(retry.classify(exc)):
        breakers.failure(agent_id)
    else:
        breakers.success(agent_id)


def _outcome(error: A2AError | None) -> str:
    return "ok" if error is None else f"a2a_error:{type(error).__name__}"[:32]


def _task_id_of(item: StreamResponse) -> str:
    kind = item.WhichOneof("payload")
    if kind == "task":
        return str(item.task.id)
    if kind in ("status_update", "artifact_update"):
        return str(getattr(item, kind).task_id)
    return str(item.message.task_id) if kind == "message" else ""


def _event_of(item: StreamResponse) -> Event:
    kind = item.WhichOneof("payload")
    if kind is None:
        raise InvalidAgentResponseError("the agent sent an empty stream event")
    event: Event = getattr(item, kind)
    return event


@dataclass(frozen=True)
class FrontDoorParts:
    """What the handler works with; built in the app's lifespan."""

    delegations: Delegations
    tasks: TaskRecords
    upstreams: A2AUpstreams
    default_timeout_seconds: float
    stream_limits: StreamLimits
    signing_key: Callable[[], Awaitable[SigningKey]]
    public_url: str
    token_endpoint: str
    version: str
    fetcher: SafeFetcher
    push: PushRelays
    resilience: Resilience

    async def sign(self, card: AgentCard) -> AgentCard:
        """Sign with the current key, naming the gateway's JWKS as `jku`."""
        jku = self.public_url + "/.well-known/jwks.json"
        return sign_card(card, await self.signing_key(), jku)


def _without_tenants(cls: type[RequestHandlerT]) -> type[RequestHandlerT]:
    """Clear `tenant` from every request before the handler sees it.

    The gateway serves one agent per URL and has no tenants. The SDK's REST
    client transport puts a request's tenant into the upstream *path*
    (`/{tenant}/message:send`), so a caller-chosen tenant would pick a path on
    the agent's host (or another tenant of a multi-tenant agent) that the
    gateway's decision never covered.
    """
    for name, method in list(vars(cls).items()):
        if not name.startswith("on_") or not callable(method):
            continue
        setattr(cls, name, _tenant_cleared(method))
    return cls


def _tenant_cleared(method: Callable[..., Any]) -> Callable[..., Any]:
    def clear(params: Any) -> None:
        if params is not None and "tenant" in params.DESCRIPTOR.fields_by_name:
            params.ClearField("tenant")

    if inspect.isasyncgenfunction(inspect.unwrap(method)):

        @functools.wraps(method)
        def streaming(self: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
            clear(params)
            return method(self, params, *args, **kwargs)

        return streaming

    @functools.wraps(method)
    async def plain(self: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        clear(params)
        return await method(self, params, *args, **kwargs)

    return plain


@_without_tenants
class AgentHandler(RequestHandler):
    """Every A2A operation on one registered agent, through the pipeline.

    The SDK's routes are created with the app, before the lifespan has opened
    the database; ``parts`` is asked for what the handler needs at call time.
    """

    def __init__(self, parts: Callable[[], FrontDoorParts]) -> None:
        self._parts = parts

    @property
    def delegations(self) -> Delegations:
        return self._parts().delegations

    @property
    def tasks(self) -> TaskRecords:
        return self._parts().tasks

    @property
    def upstreams(self) -> A2AUpstreams:
        return self._parts().upstreams

    @property
    def default_timeout(self) -> float:
        return self._parts().default_timeout_seconds

    @property
    def stream_limits(self) -> StreamLimits:
        return self._parts().stream_limits

    @property
    def resilience(self) -> Resilience:
        return self._parts().resilience

    # Plumbing -------------------------------------------------------------

    def _timeout(self, admission: Admission) -> float:
        return admission.grant.agent.timeout_seconds or self.default_timeout

    def _client(self, admission: Admission) -> tuple[ClientTransport, UpstreamEndpoint]:
        agent = admission.grant.agent
        try:
            return self.upstreams.client(agent.id, agent.card_digest, admission.grant.card)
        except NoUsableInterface as exc:
            raise UnsupportedOperationError(f"agent {agent.id}: {exc}") from None

    def _context(self, admission: Admission, *, streaming: bool = False) -> Any:
        context = self.upstreams.context(
            admission.grant.token.token, None if streaming else self._timeout(admission)
        )
        if admission.extensions and context.service_parameters is not None:
            context.service_parameters[HTTP_EXTENSION_HEADER] = ",".join(
                sorted(admission.extensions)
            )
        return context

    async def _call(
        self,
        admission: Admission,
        operation: str,
        call: Callable[[ClientTransport, Any], Awaitable[T]],
        *,
        idempotent: bool = False,
        may_fall_back: bool = False,
        note: str = "",
    ) -> T:
        """One operation on the agent, under its breaker, retried when
        ``idempotent`` (`gateway.delegation.retry`). With ``may_fall_back``, a failure
        that says the agent is down raises `AgentDown` unaudited, for the caller
        to hand the call to a fallback."""
        transport, _ = self._client(admission)
        resilience = self.resilience
        attempts = Attempts()
        try:
            result = await retry.run(
                lambda: call(transport, self._context(admission)),
                upstream=admission.agent_id,
                breakers=resilience.breakers,
                idempotent=idempotent,
                settings=resilience.retry,
                attempts=attempts,
            )
        except BreakerOpen as exc:
            error: A2AError = breaker_error(exc)
            down = True
        except (A2AError, httpx.HTTPError, aiohttp.ClientError, ParseError) as exc:
            error = upstream_error(admission.agent_id, exc, self._timeout(admission))
            down = attempts.last_failure is Failure.UNREACHED or (
                idempotent and attempts.last_failure is Failure.TRANSIENT
            )
        else:
            await self._audit(admission, operation, None, tried_note(attempts) + note)
            return result
        if down and may_fall_back:
            raise AgentDown(error, tried_note(attempts))
        await self._audit(admission, operation, error, tried_note(attempts) + note)
        raise error from None

    async def _send(
        self,
        admission: Admission,
        skill: str | None,
        operation: str,
        call: Callable[[ClientTransport, Any], Awaitable[T]],
    ) -> tuple[Admission, T]:
        """A message to the agent, or -- when it is down and the policy names a
        fallback for the skill -- to the fallback, with a token minted for it
        by the same decision. Returns the admission actually used."""
        rules = self.resilience.handoff(self.delegations.policy.current, admission.agent_id, skill)
        if admission.down is None:
            try:
                return admission, await self._call(
                    admission,
                    operation,
                    call,
                    idempotent=bool(rules.idempotent),
                    may_fall_back=rules.fallback is not None,
                )
            except AgentDown as down:
                error, tried = down.error, down.tried
        else:
            error, tried = admission.down, ""
        assert rules.fallback is not None
        fallback = await self._fallback(admission, rules.fallback, skill)
        if fallback is None:
            await self._audit(admission, operation, error, tried + "; no usable fallback")
            raise error from None
        await self._audit(
            admission, operation, error, f"{tried}; handed to fallback {fallback.agent_id}"
        )
        fallback_rules = self.resilience.handoff(
            self.delegations.policy.current, fallback.agent_id, skill
        )
        answer = await self._call(
            fallback,
            operation,
            call,
            idempotent=bool(fallback_rules.idempotent),
            note=f"; fallback for {admission.agent_id} ({error})",
        )
        return fallback, answer

    async def _fallback(
        self, admission: Admission, agent_id: str, skill: str | None
    ) -> Admission | None:
        """The admission for a fallback agent: the same caller, the same
        decision (a denial is audited by `admit` and means no fallback)."""
        grant = admission.grant
        try:
            fallback = await self.delegations.admit(
                grant.caller, agent_id, event="a2a", trace_id=grant.trace_id, action=skill
            )
        except (AgentNotFound, DelegationDenied) as exc:
            logger.warning("fallback %s for %s not usable: %s", agent_id, admission.agent_id, exc)
            return None
        return Admission(fallback, admission.owner, admission.extensions)

    async def _checked_skill(
        self, admission: Admission, params: SendMessageRequest, operation: str
    ) -> str | None:
        try:
            return self._check_contract(admission, params)
        except A2AError as refusal:
            await self._audit(admission, operation, refusal, "; not called")
            raise

    async def _stream_target(self, admission: Admission, skill: str | None) -> Admission:
        """Where a stream goes: the agent, or its fallback while its breaker is
        open. (A stream is not retried, nor moved once it has started.)"""
        breakers = self.resilience.breakers
        if breakers.would_allow(admission.agent_id):
            return admission
        rules = self.resilience.handoff(self.delegations.policy.current, admission.agent_id, skill)
        if rules.fallback is None:
            return admission  # `_relay` fails fast
        fallback = await self._fallback(admission, rules.fallback, skill)
        if fallback is None:
            return admission
        state = breakers.state(admission.agent_id)
        error = breaker_error(BreakerOpen(admission.agent_id, state))
        await self._audit(
            admission, "SendStreamingMessage", error, f"; handed to fallback {fallback.agent_id}"
        )
        return fallback

    def _check_contract(self, admission: Admission, params: SendMessageRequest) -> str | None:
        """The message's skill, after checking its contract (see `gateway.delegation.handoffs`)."""
        message = params.message
        skill = skill_of(
            admission.agent_id,
            admission.grant.card,
            params.metadata if params.HasField("metadata") else None,
            message.metadata if message.HasField("metadata") else None,
        )
        contracts = admission.grant.agent.skill_contracts
        if skill is None or skill not in contracts or message.task_id:
            return skill
        parts = (
            (i, MessageToDict(part.data))
            for i, part in enumerate(message.parts)
            if part.HasField("data")
        )
        refusal = contract_refusal(admission.agent_id, skill, contracts[skill], parts)
        if refusal is not None:
            raise refusal
        return skill

    async def _audit(
        self, admission: Admission, operation: str, error: A2AError | None, note: str = ""
    ) -> None:
        detail = (str(error) if error is not None else "") + note
        await self.delegations.record(
            admission.grant, f"a2a.{operation}", _outcome(error), detail.lstrip("; ")[:500] or None
        )

    async def _own_task(self, admission: Admission, task_id: str) -> None:
        # A2A 1.0 §3.1.3: another user's task is indistinguishable from none.
        if await self.tasks.owner_of(admission.agent_id, task_id) != admission.owner:
            await self._audit(admission, "ownership", TaskNotFoundError())
            raise TaskNotFoundError(f"task {task_id} not found")

    @staticmethod
    def _no_inline_push(params: SendMessageRequest) -> None:
        if params.configuration.HasField("task_push_notification_config"):
            # The agent would call the client's webhook directly, past the
            # gateway's checks; configs go through CreateTaskPushNotificationConfig.
            raise PushNotificationNotSupportedError(
                "push configs in SendMessage are not relayed; create one with "
                "CreateTaskPushNotificationConfig once the task exists"
            )

    async def _check_message(self, admission: Admission, message: Message) -> None:
        if message.task_id:
            await self._own_task(admission, message.task_id)
        for referenced in message.reference_task_ids:
            await self._own_task(admission, referenced)
        if message.context_id:
            owners = await self.tasks.context_owners(admission.agent_id, message.context_id)
            if owners and owners != {admission.owner}:
                await self._audit(admission, "ownership", TaskNotFoundError())
                raise TaskNotFoundError(f"context {message.context_id} not found")

    async def _remember(self, admission: Admission, task: Task) -> None:
        if not await self.tasks.record(admission.agent_id, admission.owner, task):
            logger.warning(
                "agent %s answered with task id %r that belongs to another user",
                admission.agent_id,
                task.id,
            )
            raise InvalidAgentResponseError(
                f"agent {admission.agent_id} answered with a task id it already gave someone else"
            )

    async def _observe(self, admission: Admission, event: Event) -> None:
        if isinstance(event, Task):
            await self._remember(admission, event)
        elif not await self.tasks.observe(admission.agent_id, admission.owner, event):
            raise InvalidAgentResponseError(
                f"agent {admission.agent_id} sent an update for a task that is not yours"
            )

    async def _relay(
        self,
        admission: Admission,
        operation: str,
        open_stream: Callable[[ClientTransport, Any], AsyncIterator[StreamResponse]],
    ) -> AsyncGenerator[Event]:
        """Pass events through as they arrive, recording tasks on the way.

        The stream is closed (and the upstream connection with it) when the
        client goes away, when the duration cap is hit, or on any error.
        """
        transport, _ = self._client(admission)
        breakers = self.resilience.breakers
        error: A2AError | None = None
        try:
            breakers.check(admission.agent_id)
        except BreakerOpen as exc:
            error = breaker_error(exc)
            await self._audit(admission, operation, error)
            raise error from None
        stream = open_stream(transport, self._context(admission, streaming=True))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stream_limits.max_seconds
        started = False  # the breaker hears how the stream opened, only
        try:
            while True:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(remaining):
                        item = await anext(stream)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    error = InternalError(
                        f"the stream from agent {admission.agent_id} passed the "
                        f"{self.stream_limits.max_seconds:g} s limit"
                    )
                    raise error from None
                except (A2AError, httpx.HTTPError, aiohttp.ClientError, ParseError) as exc:
                    if not started:
                        _report(breakers, admission.agent_id, exc)
                    error = upstream_error(admission.agent_id, exc, None)
                    raise error from None
                if not started:
                    started = True
                    breakers.success(admission.agent_id)
                event = _event_of(item)
                try:
                    await self._observe(admission, event)
                except A2AError as exc:
                    error = exc
                    raise
                yield event
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            await self._audit(admission, operation, error)

    # Messages -------------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        admission = admission_of(context)
        self._no_inline_push(params)
        await self._check_message(admission, params.message)
        skill = await self._checked_skill(admission, params, "SendMessage")
        admission, response = await self._send(
            admission, skill, "SendMessage", lambda t, c: t.send_message(params, context=c)
        )
        if response.HasField("task"):
            await self._remember(admission, response.task)
            return response.task
        if response.HasField("message"):
            return response.message
        raise InvalidAgentResponseError(f"agent {admission.agent_id} answered with neither")

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        admission = admission_of(context)
        self._no_inline_push(params)
        await self._check_message(admission, params.message)
        capabilities = admission.grant.card.get("capabilities") or {}
        if not capabilities.get("streaming"):
            # The agent does not stream: its one answer is the whole stream.
            yield await self.on_message_send(params, context)
            return
        skill = await self._checked_skill(admission, params, "SendStreamingMessage")
        admission = await self._stream_target(admission, skill)
        async for event in self._relay(
            admission,
            "SendStreamingMessage",
            lambda t, c: t.send_message_streaming(params, context=c),
        ):
            yield event

    # Tasks ----------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        validate_history_length(params)
        admission = admission_of(context)
        await self._own_task(admission, params.id)
        task = await self._call(
            admission, "GetTask", lambda t, c: t.get_task(params, context=c), idempotent=True
        )
        await self._remember(admission, task)
        return task

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        # Answered from the gateway's records: only the caller's tasks, for
        # every agent, whether or not the agent itself implements ListTasks.
        admission = admission_of(context)
        page = await list_own_tasks(self.tasks, admission.agent_id, admission.owner, params)
        await self._audit(admission, "ListTasks", None)
        return page

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        admission = admission_of(context)
        await self._own_task(admission, params.id)
        task = await self._call(
            admission, "CancelTask", lambda t, c: t.cancel_task(params, context=c)
        )
        await self._remember(admission, task)
        return task

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        admission = admission_of(context)
        await self._own_task(admission, params.id)
        async for event in self._relay(
            admission, "SubscribeToTask", lambda t, c: t.subscribe(params, context=c)
        ):
            yield event

    # Push notification configs ----------------------------------------------

    def _check_push(self, admission: Admission) -> None:
        capabilities = admission.grant.card.get("capabilities") or {}
        if not capabilities.get("pushNotifications"):
            raise PushNotificationNotSupportedError(
                f"agent {admission.agent_id} does not send push notifications"
            )

    @validate_request_params
    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        if (problem := header_problem(params)) is not None:
            raise InvalidParamsError(problem)
        try:
            await self._parts().fetcher.resolve(params.url)
        except FetchError as exc:
            raise InvalidParamsError(f"push notification url refused: {exc}") from None
        parts = self._parts()
        stored, upstream = await parts.push.create(admission.agent_id, admission.owner, params)
        try:
            await self._call(
                admission,
                "CreateTaskPushNotificationConfig",
                lambda t, c: t.create_task_push_notification_config(upstream, context=c),
            )
        except A2AError:
            await parts.push.delete(admission.agent_id, admission.owner, stored.task_id, stored.id)
            raise
        return stored

    @validate_request_params
    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        found = await self._parts().push.configs(
            admission.agent_id, admission.owner, params.task_id, params.id
        )
        if not found:
            raise TaskNotFoundError(f"no push notification config {params.id}")
        return found[0]

    @validate_request_params
    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        found = await self._parts().push.configs(
            admission.agent_id, admission.owner, params.task_id
        )
        return ListTaskPushNotificationConfigsResponse(configs=found)

    @validate_request_params
    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        parts = self._parts()
        if not await parts.push.delete(
            admission.agent_id, admission.owner, params.task_id, params.id
        ):
            raise TaskNotFoundError(f"no push notification config {params.id}")
        # The agent's copy points at a relay that no longer exists; removing it
        # is a courtesy, and a failure leaves nothing the agent could use.
        with contextlib.suppress(A2AError):
            await self._call(
                admission,
                "DeleteTaskPushNotificationConfig",
                lambda t, c: t.delete_task_push_notification_config(params, context=c),
            )

    async def relay_notification(self, request: Request) -> Response:
        """`POST /a2a/{agent_id}/push/{relay_id}`: a notification from the agent."""
        parts = self._parts()
        agent_id = request.path_params["agent_id"]
        try:
            relay = await parts.push.relay_for(
                agent_id,
                request.path_params["relay_id"],
                request.headers.get("x-a2a-notification-token"),
            )
        except RelayRefused:
            return JSONResponse({"error": "unknown relay or wrong token"}, status_code=401)
        try:
            event = parse_notification(json.loads(await request.body()))
        except (ValueError, RecursionError) as exc:
            return JSONResponse({"error": str(exc)[:300]}, status_code=400)
        task_id = _task_id_of(event)
        if task_id and task_id != relay.task_id:
            return JSONResponse({"error": "the event is about another task"}, status_code=400)
        await parts.tasks.observe(agent_id, relay.owner, _event_of(event))
        try:
            status = await parts.push.forward(parts.upstreams.http, relay, event)
        except CredentialsUnavailable as exc:
            # Recorded, not forwarded: this config's credentials cannot be
            # opened (the reason names no secret). Other configs are unaffected.
            logger.warning(
                "push config %s of task %s (agent %s) not forwarded: %s",
                relay.config_id,
                relay.task_id,
                agent_id,
                exc,
            )
            return JSONResponse(
                {"error": "the client's webhook credentials cannot be used"}, status_code=502
            )
        except httpx.HTTPError as exc:
            logger.warning("push to the webhook of task %s failed: %r", relay.task_id, exc)
            return JSONResponse({"error": "the client's webhook is unreachable"}, status_code=502)
        except ValueError as exc:
            # A header the HTTP client refuses (a control character in a
            # config stored before `header_problem` was checked on create).
            # Its message may quote the value, a secret: only the type is logged.
            logger.warning(
                "push config %s of task %s (agent %s) not forwarded: %s in its headers",
                relay.config_id,
                relay.task_id,
                agent_id,
                type(exc).__name__,
            )
            return JSONResponse(
                {"error": "the client's webhook headers cannot be sent"}, status_code=502
            )
        if status >= 400:
            return JSONResponse({"error": f"the client's webhook answered {status}"}, 502)
        return Response(status_code=204)

    # Cards ----------------------------------------------------------------

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        admission = admission_of(context)
        capabilities = admission.grant.card.get("capabilities") or {}
        if not capabilities.get("extendedAgentCard"):
            raise ExtendedAgentCardNotConfiguredError(
                f"agent {admission.agent_id} has no extended card"
            )
        extended = await self._call(
            admission,
            "GetExtendedAgentCard",
            lambda t, c: t.get_extended_agent_card(params, context=c),
            idempotent=True,
        )
        return await self.card_for(admission.agent_id, MessageToDict(extended))

    async def card_for(self, agent_id: str, upstream_card: dict[str, Any]) -> AgentCard:
        parts = self._parts()
        url = f"{parts.public_url}/a2a/{agent_id}"
        return await parts.sign(proxied_card(upstream_card, url, parts.token_endpoint))


class GatewayHandler(RequestHandler):
    """The gateway's own A2A endpoint (`/a2a`): it runs no tasks itself, and its
    authenticated extended card lists the skills the caller may use, across
    every registered agent (skill ids are `<agent id>/<skill id>`)."""

    def __init__(self, parts: Callable[[], FrontDoorParts]) -> None:
        self._parts = parts

    @staticmethod
    def _nothing_here() -> UnsupportedOperationError:
        return UnsupportedOperationError(
            "the gateway runs no tasks itself: send to /a2a/{agent_id} (see the extended card)"
        )

    async def card(self, principal: Principal | None = None) -> AgentCard:
        parts = self._parts()
        skills: list[AgentSkill] = []
        if principal is not None:
            skills = await self._usable_skills(principal)
        card = gateway_card(
            parts.public_url + "/a2a",
            parts.public_url,
            parts.token_endpoint,
            parts.version,
            skills,
            extended=principal is not None,
        )
        return await parts.sign(card)

    async def _usable_skills(self, principal: Principal) -> list[AgentSkill]:
        """Each skill decided as a message for it is (`Delegations.usable_skills`)."""
        delegations = self._parts().delegations
        caller = Caller.user(principal)
        skills: list[AgentSkill] = []
        async for record, card in delegations.agents.all_with_cards():
            for skill in delegations.usable_skills(caller, record.id, card):
                entry = AgentSkill()
                ParseDict(
                    {k: v for k, v in skill.items() if k != "securityRequirements"},
                    entry,
                    ignore_unknown_fields=True,
                )
                entry.id = f"{record.id}/{entry.id}"
                entry.tags.append(f"agent:{record.id}")
                skills.append(entry)
        return skills

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        principal: Principal = context.state[PRINCIPAL]
        return await self.card(principal)

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        raise self._nothing_here()

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        raise self._nothing_here()
        yield  # pragma: no cover - makes this an async generator

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        raise TaskNotFoundError

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        return ListTasksResponse(page_size=params.page_size or 50)

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        raise TaskNotFoundError

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        raise TaskNotFoundError
        yield  # pragma: no cover - makes this an async generator

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError


class _GatewayContextBuilder(ServerCallContextBuilder):
    def build(self, request: Request) -> ServerCallContext:
        principal: Principal = request.state.principal
        return _call_context(request, principal.subject, PRINCIPAL, principal)


# Routes ---------------------------------------------------------------------


def _jsonrpc_refusal(status: int, message: str, data: Any = None) -> Response:
    error: dict[str, Any] = {"code": DELEGATION_REFUSED, "message": message}
    if data is not None:
        error["data"] = data
    return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=status)


def _rest_refusal(status: int, message: str, data: Any = None) -> Response:
    grpc_status = {403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(status, "FAILED_PRECONDITION")
    body: dict[str, Any] = {"code": status, "status": grpc_status, "message": message}
    if data is not None:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "DELEGATION_REFUSED",
                "domain": "switchboard",
                "metadata": {k: str(v) for k, v in data.items()},
            }
        ]
    return JSONResponse({"error": body}, status_code=status)


def _card_response(
    request: Request, document: dict[str, Any], modified: datetime | None
) -> Response:
    """A card with the caching headers of A2A 1.0 §8.6.1: a weak ETag (and a
    304 for a matching If-None-Match), Last-Modified when known, and a short
    max-age so a re-registered card is picked up within a minute."""
    headers = {"Cache-Control": "public, max-age=60", "ETag": etag(document)}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(as_utc(modified), usegmt=True)
    wanted = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    if "*" in tags or headers["ETag"].removeprefix("W/") in tags:
        return Response(status_code=304, headers=headers)
    return JSONResponse(document, headers=headers)


async def _parse_jsonrpc_body(request: Request) -> Response | None:
    """Parse the body once, here, so that JSON nested deep enough to exhaust the
    parser's recursion is a parse error (-32700), not the SDK's internal error
    carrying Python's exception text."""
    if hasattr(request, "_json"):
        return None  # parsed already (to find the skill before admission)
    try:
        # Starlette keeps the parsed body on the request; the SDK's dispatcher
        # reads it from there instead of parsing again.
        request._json = json.loads(await request.body())
    except (ValueError, RecursionError):
        error = {"code": -32700, "message": "the request body is not valid JSON"}
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error})
    return None


class OtherAgents(Protocol):
    """Targets served at `/a2a/{id}` that are not A2A agents (`gateway.mcp.as_a2a`:
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
    """Registered agents the gateway runs itself (`gateway.a2a.vendor`: OpenAI-
    compatible and REST webhook upstreams). They are agents -- admitted, listed
    and decided like any other -- whose card carries the gateway-run mark; their
    calls go to this handler instead of an A2A upstream."""

    @property
    def handler(self) -> RequestHandler:
        """The SDK handler that serves them."""

    def serves(self, card: dict[str, Any]) -> bool:
        """Whether the agent with this (stored) card is run by the gateway."""


# Answers a request itself, or returns None to leave it to the SDK's dispatcher
# (`gateway.a2a.passthrough.PassThrough`).
PassThroughPath = Callable[[Request, Admission, Any], Awaitable[Response | None]]


Endpoint = Callable[[Request], Awaitable[Response]]
# The operations that send a message, in both versions' spellings.
_MESSAGE_METHODS = frozenset(
    {"SendMessage", "SendStreamingMessage", "message/send", "message/stream"}
)
_MESSAGE_PATHS = ("/message:send", "/message:stream")


class _Unparseable(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _mapping(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _sdk_endpoints(
    handler: RequestHandler, context: ServerCallContextBuilder
) -> tuple[Endpoint, list[Endpoint]]:
    """The SDK's JSON-RPC endpoint and its HTTP+JSON endpoints (in the order
    `create_rest_routes` makes them) for ``handler``."""
    (jsonrpc,) = create_jsonrpc_routes(
        handler, "/", context_builder=context, enable_v0_3_compat=True
    )
    assert isinstance(jsonrpc, Route)
    rest = [
        r.endpoint
        for r in create_rest_routes(handler, context_builder=context, enable_v0_3_compat=True)
        if isinstance(r, Route)
    ]
    return jsonrpc.endpoint, rest


class A2AFrontDoor:
    """Builds the `/a2a/{agent_id}` routes around the SDK's dispatchers."""

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
        # Serves agents whose calls wait for a human (`gateway.a2a.approvals`).
        self.approvals = approvals

    async def admit(self, request: Request, jsonrpc: bool) -> Response | None:
        refuse = _jsonrpc_refusal if jsonrpc else _rest_refusal
        agent_id = request.path_params["agent_id"]
        public_url = self.handler._parts().public_url
        try:
            principal, onwards = await front_door_principal(request, f"{public_url}/a2a/{agent_id}")
            caller = Caller.delegated(principal) if onwards else Caller.user(principal)
        except Problem as problem:
            return problem_response(problem)
        except TokenInvalid as exc:  # a malformed act claim
            return problem_response(Problem(401, "invalid-token", "Invalid token", str(exc)))
        trace_id = begin_trace(request.headers)
        try:
            skill = await self._skill(request, jsonrpc, agent_id, caller)
        except _Unparseable as refusal:
            return refusal.response
        try:
            grant = await self.handler.delegations.admit(
                caller, agent_id, event="a2a", trace_id=trace_id, action=skill
            )
        except AgentNotFound:
            other = None
            if self.others is not None:
                other = await self.others.admission(agent_id, caller, trace_id)
            if other is None:
                return refuse(404, f"no agent {agent_id}")
            request.state.admission = other
            request.state.other = True
            return None
        except ApprovalRequired as pending:
            if self.approvals is None or not isinstance(pending.permit, Grant):
                reasons = list(pending.decision.reasons)
                return refuse(
                    403,
                    "delegation needs human approval: " + "; ".join(reasons),
                    {"reasons": reasons, "approval_required": True},
                )
            grant, request.state.approval = pending.permit, True
        except DelegationDenied as denied:
            reasons = list(denied.decision.reasons)
            return refuse(403, "delegation refused: " + "; ".join(reasons), {"reasons": reasons})
        extensions = get_requested_extensions(request.headers.getlist(HTTP_EXTENSION_HEADER))
        request.state.admission = Admission(
            grant, Owner(caller.subject, caller.issuer), frozenset(extensions)
        )
        return None

    async def _skill(
        self, request: Request, jsonrpc: bool, agent_id: str, caller: Caller
    ) -> str | None:
        """The skill a message asks for (`gateway.delegation.handoffs.skill_of`), so that the
        decision is the skill's own: a `require` or `approval` on one skill
        applies to the call, not only to listings. None for every other
        request (reading or cancelling one's own task is the agent's decision).

        A message that names no skill, to an agent with several, may reach any
        of them (the agent picks): it is decided as for the strictest skill
        this caller is held to more tightly than to the agent -- one it may not
        use, else one that needs approval -- so leaving the skill unsaid never
        gets round a skill's own rule. None when no skill is stricter."""
        if jsonrpc:
            refused = await _parse_jsonrpc_body(request)
            if refused is not None:
                raise _Unparseable(refused)
            body = request._json
            if not isinstance(body, dict) or body.get("method") not in _MESSAGE_METHODS:
                return None
            params = body.get("params")
        else:
            if not request.url.path.endswith(_MESSAGE_PATHS) or request.method != "POST":
                return None
            try:
                params = json.loads(await request.body())
            except (ValueError, RecursionError):
                return None  # the SDK answers it
        if not isinstance(params, dict):
            return None
        message = params.get("message")
        try:
            _, card, target = await self.handler.delegations.target(agent_id)
            named = skill_of(
                agent_id,
                card,
                _mapping(params.get("metadata")),
                _mapping(message.get("metadata") if isinstance(message, dict) else None),
            )
        except (AgentNotFound, InvalidParamsError):
            return None  # not an agent (admit says so), or a bad skill (the SDK path says so)
        return named if named is not None else self._strictest(caller, target, card)

    def _strictest(self, caller: Caller, target: Target, card: Mapping[str, Any]) -> str | None:
        delegations = self.handler.delegations
        agent = delegations.decide(caller, target, None, "skill")
        held: str | None = None
        for skill in card_skills(card):
            decision = delegations.decide(caller, target, skill["id"], "skill")
            if agent.allowed and not decision.allowed:
                return str(skill["id"])
            if held is None and decision.approval_required and not agent.approval_required:
                held = str(skill["id"])
        return held

    def _guarded(
        self,
        endpoint: Endpoint,
        other_endpoint: Endpoint | None,
        *,
        jsonrpc: bool,
        run_endpoint: Endpoint | None = None,
        approval_endpoint: Endpoint | None = None,
    ) -> Endpoint:
        async def guarded(request: Request) -> Response:
            refused = await self.admit(request, jsonrpc)
            if refused is not None:
                return refused
            if approval_endpoint is not None and getattr(request.state, "approval", False):
                refused = await _parse_jsonrpc_body(request) if jsonrpc else None
                return refused if refused is not None else await approval_endpoint(request)
            if getattr(request.state, "other", False):
                assert other_endpoint is not None
                refused = await _parse_jsonrpc_body(request) if jsonrpc else None
                return refused if refused is not None else await other_endpoint(request)
            if (
                run_endpoint is not None
                and self.gateway_run is not None
                and self.gateway_run.serves(request.state.admission.grant.card)
            ):
                refused = await _parse_jsonrpc_body(request) if jsonrpc else None
                return refused if refused is not None else await run_endpoint(request)
            if jsonrpc:
                refused = await _parse_jsonrpc_body(request)
                if refused is None and self.pass_through is not None:
                    refused = await self.pass_through(
                        request, request.state.admission, request._json
                    )
            return refused if refused is not None else await endpoint(request)

        return guarded

    async def agent_card(self, request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        legacy = request.url.path.endswith("/agent.json")
        found = await self.handler.delegations.agents.get_with_card(agent_id)
        if found is not None:
            card = await self.handler.card_for(agent_id, found[1])
            return _card_response(request, card_json(card, legacy=legacy), found[0].updated_at)
        if self.others is not None:
            parts = self.handler._parts()
            other = await self.others.card(agent_id, f"{parts.public_url}/a2a/{agent_id}")
            if other is not None:
                card = await parts.sign(other[0])
                return _card_response(request, card_json(card, legacy=legacy), other[1])
        return _rest_refusal(404, f"no agent {agent_id}")

    def routes(self) -> list[BaseRoute]:
        context = _ContextBuilder()
        (jsonrpc,) = create_jsonrpc_routes(
            self.handler, "/", context_builder=context, enable_v0_3_compat=True
        )
        rest = [
            r
            for r in create_rest_routes(
                self.handler, context_builder=context, enable_v0_3_compat=True
            )
            if isinstance(r, Route)
        ]
        other_jsonrpc: BaseRoute | None = None
        other_rest: list[Route | None] = [None] * len(rest)
        if self.others is not None:
            (other_jsonrpc,) = create_jsonrpc_routes(
                self.others.handler, "/", context_builder=context, enable_v0_3_compat=True
            )
            other_rest = [
                r
                for r in create_rest_routes(
                    self.others.handler, context_builder=context, enable_v0_3_compat=True
                )
                if isinstance(r, Route)
            ]
        run_jsonrpc: Endpoint | None = None
        run_rest: list[Endpoint | None] = [None] * len(rest)
        if self.gateway_run is not None:
            run_jsonrpc, run_rest_endpoints = _sdk_endpoints(self.gateway_run.handler, context)
            run_rest = list(run_rest_endpoints)
        held_jsonrpc: Endpoint | None = None
        held_rest: list[Endpoint | None] = [None] * len(rest)
        if self.approvals is not None:
            held_jsonrpc, held_rest_endpoints = _sdk_endpoints(self.approvals, context)
            held_rest = list(held_rest_endpoints)
        assert isinstance(jsonrpc, Route)
        jsonrpc_endpoint = self._guarded(
            jsonrpc.endpoint,
            other_jsonrpc.endpoint if isinstance(other_jsonrpc, Route) else None,
            jsonrpc=True,
            run_endpoint=run_jsonrpc,
            approval_endpoint=held_jsonrpc,
        )
        inner: list[BaseRoute] = [
            Route("/.well-known/agent-card.json", self.agent_card, methods=["GET"]),
            Route("/.well-known/agent.json", self.agent_card, methods=["GET"]),
            # Agents authenticate here with the relay token, not a bearer token.
            Route("/push/{relay_id}", self.handler.relay_notification, methods=["POST"]),
            Route("/", jsonrpc_endpoint, methods=["POST"]),
        ]
        # The SDK also mounts every route under `/{tenant}` (a Mount, dropped
        # above); the gateway serves one agent per URL and has no tenants.
        for route, other, run, held in zip(rest, other_rest, run_rest, held_rest, strict=True):
            inner.append(
                Route(
                    route.path,
                    self._guarded(
                        route.endpoint,
                        other.endpoint if other else None,
                        jsonrpc=False,
                        run_endpoint=run,
                        approval_endpoint=held,
                    ),
                    methods=list(route.methods or ()),
                )
            )
        (own,) = create_jsonrpc_routes(
            self.gateway, "/a2a", context_builder=_GatewayContextBuilder(), enable_v0_3_compat=True
        )
        assert isinstance(own, Route)
        own_endpoint = self._authenticated(own.endpoint)
        return [
            Route("/.well-known/agent-card.json", self.gateway_card, methods=["GET"]),
            Route("/.well-known/agent.json", self.gateway_card, methods=["GET"]),
            Route("/a2a", own_endpoint, methods=["POST"]),
            Route("/a2a/", own_endpoint, methods=["POST"]),
            # Without the trailing slash, as registered interface URLs usually are.
            Route("/a2a/{agent_id}", jsonrpc_endpoint, methods=["POST"]),
            Mount("/a2a/{agent_id}", routes=inner),
        ]

    async def gateway_card(self, request: Request) -> Response:
        card = await self.gateway.card()
        legacy = request.url.path.endswith("/agent.json")
        return _card_response(request, card_json(card, legacy=legacy), None)

    def _authenticated(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def authenticated(request: Request) -> Response:
            try:
                request.state.principal = await current_principal(request)
            except Problem as problem:
                return problem_response(problem)
            refused = await _parse_jsonrpc_body(request)
            return refused if refused is not None else await endpoint(request)

        return authenticated
