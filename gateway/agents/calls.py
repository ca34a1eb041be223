"""Calls to an A2A agent under the pipeline: transport, breaker, retry,
fallback, contract, ownership and audit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, TypeVar, cast

from a2a.client.transports.base import ClientTransport
from a2a.extensions.common import HTTP_EXTENSION_HEADER
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    SendMessageRequest,
    SendMessageResponse,
    Task,
)
from a2a.utils.errors import (
    A2AError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from adapters.a2a import A2AUpstreams, NoUsableInterface, UpstreamEndpoint
from adapters.http import UpstreamRefused
from adapters.operations import Operation
from gateway.agents import fallbacks
from gateway.agents.admission import Admission, FrontDoorParts, StreamLimits, handler_context
from gateway.agents.consents import CallToken
from gateway.agents.jsonrpc_send import explained, plain_post, sends_plainly
from gateway.agents.stream_relay import OpenStream, relay, unavailable
from gateway.agents.upstream_errors import explain_agent_failure, outcome_of, upstream_error
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.delegate import BreakerOpen, Delegate, Explained, Sending, UpstreamDown
from gateway.delegation.handoffs import check_contract, checked_skill
from gateway.delegation.pipeline import Delegations
from gateway.delegation.resilience import Resilience, breaker_error
from gateway.delegation.tasks import TaskRecords
from gateway.delegation.upstream_failures import UpstreamBadAnswerError
from gateway.storage.outages import outage_of

logger = logging.getLogger(__name__)

T = TypeVar("T")


class AgentCalls:
    """Calling one registered agent for an admitted request: its transport and
    context, breaker, retries, fallback, contract check, ownership records and
    the audit of every operation. `AgentHandler` adds the A2A operations.

    The SDK's routes are created with the app, before the lifespan has opened
    the database; ``parts`` is asked for what the handler needs at call time.
    """

    # Serves the gateway's own tasks of calls held back (deferred by a
    # coordination rule, waiting for a user's consent: `gateway.agents.
    # approvals`): the agent has never seen them.
    held: RequestHandler | None = None

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

    @property
    def delegate(self) -> Delegate:
        return self._parts().delegate

    # Plumbing -------------------------------------------------------------

    def timeout_of(self, admission: Admission) -> float:
        return admission.grant.agent.timeout_seconds or self.default_timeout

    async def client(
        self, admission: Admission, operation: str
    ) -> tuple[ClientTransport, UpstreamEndpoint]:
        """The agent's transport. A gRPC agent's target is resolved and checked
        when its transport is made: a refusal then is the call's, audited."""
        agent = admission.grant.agent
        try:
            return await self.upstreams.client(agent.id, agent.card_digest, admission.grant.card)
        except NoUsableInterface as exc:
            raise UnsupportedOperationError(f"agent {agent.id}: {exc}") from None
        except UpstreamRefused as exc:
            error = upstream_error(agent.id, exc, None)
            await self.audit(admission, operation, error)
            raise error from None

    def call_token(self, admission: Admission) -> CallToken:
        """The token the call goes with: minted, or the user's own
        (`gateway.agents.consents`), got in the core's `before` step."""
        return CallToken(self._parts().consents, admission.grant, admission.connection)

    def context(self, admission: Admission, token: CallToken, *, streaming: bool = False) -> Any:
        context = self.upstreams.context(
            token.token, None if streaming else self.timeout_of(admission)
        )
        if admission.extensions and context.service_parameters is not None:
            context.service_parameters[HTTP_EXTENSION_HEADER] = ",".join(
                sorted(admission.extensions)
            )
        return context

    def explain(self, admission: Admission) -> Callable[[BaseException], Explained]:
        """A failure of a call to this agent as the A2A error its caller gets."""
        return functools.partial(
            explain_agent_failure, admission.agent_id, self.timeout_of(admission)
        )

    async def _call(
        self,
        admission: Admission,
        operation: str,
        call: Callable[[ClientTransport, Any], Awaitable[T]],
        *,
        idempotent: bool = False,
        may_fall_back: bool = False,
        note: str = "",
        accept: Callable[[Admission, T], Awaitable[None]] | None = None,
        plain: SendMessageRequest | None = None,
    ) -> T:
        """One operation on the agent, through the delegation core
        (`gateway.delegation.delegate`): under its breaker, retried when
        ``idempotent``, recorded. With ``may_fall_back``, a failure that says
        the agent is down raises `UpstreamDown` unrecorded, for the caller to
        hand the call to a fallback. ``accept`` takes the answer in before the record
        (`Sending.accept`). ``plain``: the `SendMessage` ``call`` sends (`jsonrpc_send`)."""
        transport, endpoint = await self.client(admission, operation)
        token = self.call_token(admission)
        explain = self.explain(admission)

        async def attempt() -> T:
            try:
                return await call(transport, self.context(admission, token))
            except Exception as exc:
                token.attempted(exc)
                raise

        if plain is not None and sends_plainly(transport, endpoint):
            timeout = self.timeout_of(admission)
            raw = self.upstreams.raw
            posted = plain_post(raw, admission, token, transport, endpoint, plain, timeout)
            attempt = cast(Callable[[], Coroutine[Any, Any, T]], posted)
            explain = functools.partial(explained, admission.agent_id, timeout)
        sending: Sending[T] = Sending(
            upstream=admission.agent_id,
            attempt=attempt,
            before=token.before,
            went_with=token.went_with,
            explain=explain,
            idempotent=idempotent,
            may_hand_off=may_fall_back,
            note=note,
            accept=None if accept is None else functools.partial(accept, admission),
            operation=Operation.agent(admission.agent_id, admission.grant.card, operation),
        )
        try:
            async with token.refusals():
                return await self.delegate.send(admission.grant, f"a2a.{operation}", sending)
        except UserCredentialUnavailable as missing:
            if operation == "SendMessage":
                raise  # held for the user's consent, or said by the caller's door
            raise unavailable(missing) from None

    async def held_for_consent(
        self, admission: Admission, params: SendMessageRequest, needed: ConnectionRequired
    ) -> Task:
        """A message whose user's own token failed after admission (revoked at
        the agent, a refresh refused): held until they connect again, as an
        unconnected user's is at admission -- when the A2A door admitted it;
        other callers get `ConnectionRequired`. Nothing was sent."""
        if not admission.holds_for_consent or self.held is None:
            raise needed
        held = replace(admission, consent=needed)
        answer = await self.held.on_message_send(params, handler_context(held))
        assert isinstance(answer, Task)
        return answer

    async def _send(
        self,
        held: AsyncExitStack,
        admission: Admission,
        skill: str | None,
        operation: str,
        call: Callable[[ClientTransport, Any], Awaitable[T]],
        accept: Callable[[Admission, T], Awaitable[None]] | None = None,
        plain: SendMessageRequest | None = None,
    ) -> tuple[Admission, T]:
        """A message to the agent, or -- when it is down and the policy names a
        fallback for the skill -- to the fallback, with a token minted for it
        by the same decision, its call held open in ``held`` (`fallbacks`).
        Returns the admission actually used."""
        rules = self.resilience.handoff(self.delegations.policy.current, admission.agent_id, skill)
        if admission.down is None:
            try:
                return admission, await self._call(
                    admission,
                    operation,
                    call,
                    idempotent=bool(rules.idempotent),
                    may_fall_back=rules.fallback is not None,
                    accept=accept,
                    plain=plain,
                )
            except UpstreamDown as down:
                error, tried = cast(A2AError, down.explained.error), down.tried
        else:
            error, tried = admission.down, ""
        assert rules.fallback is not None
        fallback = await fallbacks.admitted(self.delegate, held, admission, rules.fallback, skill)
        if fallback is None:
            await self.audit(admission, operation, error, tried + "; no usable fallback")
            raise error from None
        await self.audit(
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
            accept=accept,
            plain=plain,
        )
        return fallback, answer

    async def _checked_skill(
        self, admission: Admission, params: SendMessageRequest, operation: str
    ) -> str | None:
        try:
            return self.check_contract(admission, params)
        except A2AError as refusal:
            await self.audit(admission, operation, refusal, "; not called")
            raise

    async def _stream_target(
        self, held: AsyncExitStack, admission: Admission, skill: str | None
    ) -> Admission:
        """Where a stream goes: the agent, or its fallback while its breaker is
        open (its call held open in ``held``). A stream is not retried, nor
        moved once it has started."""
        breakers = self.resilience.breakers
        if breakers.would_allow(admission.agent_id):
            return admission
        rules = self.resilience.handoff(self.delegations.policy.current, admission.agent_id, skill)
        if rules.fallback is None:
            return admission  # `_relay` fails fast
        fallback = await fallbacks.admitted(self.delegate, held, admission, rules.fallback, skill)
        if fallback is None:
            return admission
        error = breaker_error(BreakerOpen(admission.agent_id, breakers.state(admission.agent_id)))
        await self.audit(
            admission, "SendStreamingMessage", error, f"; handed to fallback {fallback.agent_id}"
        )
        return fallback

    def check_contract(self, admission: Admission, params: SendMessageRequest) -> str | None:
        """The message's skill -- the one it was admitted for, now the only one
        it names, in every place, continuing the task it was admitted for
        (`gateway.delegation.handoffs.checked_skill`) -- after checking its
        contract (`check_contract`)."""
        grant = admission.grant
        skill = checked_skill(
            admission.agent_id, grant.card, admission.skill, params, task_id=admission.task_id
        )
        check_contract(
            admission.agent_id, grant.card, grant.agent.skill_contracts, skill, params.message
        )
        return skill

    async def audit(
        self, admission: Admission, operation: str, error: A2AError | None, note: str = ""
    ) -> None:
        """The record of a refusal of the door's own (a contract, ownership, a
        handoff): the call's other records are the core's."""
        await self.delegate.record(
            admission.grant,
            f"a2a.{operation}",
            outcome_of(error),
            "" if error is None else str(error),
            note,
        )

    async def _own_task(self, admission: Admission, task_id: str) -> None:
        # A2A 1.0 §3.1.3: another user's task is indistinguishable from none.
        if await self.tasks.owner_of(admission.agent_id, task_id) != admission.owner:
            await self.audit(admission, "ownership", TaskNotFoundError())
            raise TaskNotFoundError(f"task {task_id} not found")

    async def remember(self, admission: Admission, task: Task) -> None:
        if not await self.tasks.record(
            admission.agent_id, admission.owner, task, admission.task_skill
        ):
            logger.warning(
                "agent %s answered with task id %r that belongs to another user",
                admission.agent_id,
                task.id,
            )
            raise UpstreamBadAnswerError(
                f"agent {admission.agent_id} answered with a task id it already gave someone else"
            )

    async def _take_answer(self, admission: Admission, response: SendMessageResponse) -> None:
        """A SendMessage answer: a task, recorded for its owner, or a message."""
        if response.HasField("task"):
            await self.remember(admission, response.task)
        elif not response.HasField("message"):
            raise UpstreamBadAnswerError(f"agent {admission.agent_id} answered with neither")

    async def observe(self, admission: Admission, event: Event) -> None:
        if isinstance(event, Task):
            await self.remember(admission, event)
        elif not await self.tasks.observe(
            admission.agent_id, admission.owner, event, admission.task_skill
        ):
            raise UpstreamBadAnswerError(
                f"agent {admission.agent_id} sent an update for a task that is not yours"
            )

    def _relay(
        self, admission: Admission, operation: str, open_stream: OpenStream
    ) -> AsyncGenerator[Event]:
        """Pass events through as they arrive, recording tasks on the way
        (`gateway.agents.stream_relay`)."""
        return relay(self, admission, operation, open_stream)

    async def lost_contact(self, admission: Admission, task_id: str) -> None:
        """Nobody follows this running task any more: have it reconciled
        (`gateway.agents.reconcile`). Best effort: the database may be down too."""
        try:
            if await self._parts().lost.lost(
                admission.agent_id, admission.owner, task_id, admission.grant.caller
            ):
                logger.warning(
                    "lost contact with task %s of agent %s; it will be reconciled",
                    task_id,
                    admission.agent_id,
                )
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            logger.error("task %s of agent %s not marked for reconciling: %s", task_id,
                         admission.agent_id, exc)  # fmt: skip
