"""Calls to an A2A agent under the pipeline: transport, breaker, retry,
fallback, contract, ownership and audit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import aiohttp
import httpx
from a2a.client.transports.base import ClientTransport
from a2a.extensions.common import HTTP_EXTENSION_HEADER
from a2a.server.events.event_queue import Event
from a2a.types import (
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    A2AError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import ParseError

from adapters.a2a import A2AUpstreams, NoUsableInterface, UpstreamEndpoint
from adapters.http import UpstreamRefused
from gateway.a2a.admission import Admission, FrontDoorParts, StreamLimits
from gateway.a2a.task_events import event_of
from gateway.a2a.upstream_errors import (
    AgentDown,
    outcome_of,
    report_outcome,
    tried_note,
    upstream_error,
)
from gateway.delegation import retry
from gateway.delegation.breaker import BreakerOpen
from gateway.delegation.handoffs import (
    Resilience,
    admitted_skill,
    breaker_error,
    check_contract,
)
from gateway.delegation.pipeline import (
    DelegationDenied,
    Delegations,
)
from gateway.delegation.retry import Attempts, Failure
from gateway.delegation.tasks import TaskRecords
from gateway.delegation.upstream_failures import UpstreamBadAnswerError, UpstreamTimeoutError
from gateway.storage.outages import outage_of
from registry.store import AgentNotFound

logger = logging.getLogger(__name__)

T = TypeVar("T")


class UpstreamCalls:
    """Calling one registered agent for an admitted request: its transport and
    context, breaker, retries, fallback, contract check, ownership records and
    the audit of every operation. `AgentHandler` adds the A2A operations.

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

    async def _client(
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
            await self._audit(admission, operation, error)
            raise error from None

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
        transport, _ = await self._client(admission, operation)
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
            fallback = await self.delegations.admit_message(
                grant.caller,
                agent_id,
                skill,
                event="a2a",
                trace_id=grant.trace_id,
                strictest=admission.strictest,
                inputs=admission.inputs,
            )
        except (AgentNotFound, DelegationDenied) as exc:
            logger.warning("fallback %s for %s not usable: %s", agent_id, admission.agent_id, exc)
            return None
        return replace(admission, grant=fallback, skill=skill, down=None)

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
        """The message's skill -- the one it was admitted for, now the only one
        it names, in every place, continuing the task it was admitted for
        (`gateway.delegation.handoffs.admitted_skill`) -- after checking its
        contract (`check_contract`)."""
        grant = admission.grant
        skill = admitted_skill(
            admission.agent_id, grant.card, admission.skill, params, task_id=admission.task_id
        )
        check_contract(
            admission.agent_id, grant.card, grant.agent.skill_contracts, skill, params.message
        )
        return skill

    async def _audit(
        self, admission: Admission, operation: str, error: A2AError | None, note: str = ""
    ) -> None:
        detail = (str(error) if error is not None else "") + note
        await self.delegations.record(
            admission.grant,
            f"a2a.{operation}",
            outcome_of(error),
            detail.lstrip("; ")[:500] or None,
        )

    async def _own_task(self, admission: Admission, task_id: str) -> None:
        # A2A 1.0 §3.1.3: another user's task is indistinguishable from none.
        if await self.tasks.owner_of(admission.agent_id, task_id) != admission.owner:
            await self._audit(admission, "ownership", TaskNotFoundError())
            raise TaskNotFoundError(f"task {task_id} not found")

    async def _remember(self, admission: Admission, task: Task) -> None:
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

    async def _observe(self, admission: Admission, event: Event) -> None:
        if isinstance(event, Task):
            await self._remember(admission, event)
        elif not await self.tasks.observe(
            admission.agent_id, admission.owner, event, admission.task_skill
        ):
            raise UpstreamBadAnswerError(
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
        transport, _ = await self._client(admission, operation)
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
        followed = _Followed()  # the task the stream is about, and its last state
        try:
            while True:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(remaining):
                        item = await anext(stream)
                except StopAsyncIteration:
                    followed.lost = True  # lost, if it ended with the task still running
                    break
                except TimeoutError:
                    followed.lost = True
                    error = UpstreamTimeoutError(
                        f"the stream from agent {admission.agent_id} passed the "
                        f"{self.stream_limits.max_seconds:g} s limit"
                    )
                    raise error from None
                except (A2AError, httpx.HTTPError, aiohttp.ClientError, ParseError) as exc:
                    if not started:
                        report_outcome(breakers, admission.agent_id, exc)
                    followed.lost = True
                    error = upstream_error(admission.agent_id, exc, None)
                    raise error from None
                if not started:
                    started = True
                    breakers.success(admission.agent_id)
                event = event_of(item)
                followed.see(event)
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
            if followed.lost and followed.running:
                await self._lost_contact(admission, followed.task_id)

    async def _lost_contact(self, admission: Admission, task_id: str) -> None:
        """Nobody follows this running task any more: have it reconciled
        (`gateway.a2a.reconcile`). Best effort: the database may be down too."""
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


class _Followed:
    """What a relayed stream said about its task."""

    def __init__(self) -> None:
        self.task_id = ""
        self.state = TaskState.TASK_STATE_UNSPECIFIED
        self.lost = False

    def see(self, event: Event) -> None:
        if isinstance(event, Task):
            self.task_id, self.state = event.id, event.status.state
        elif isinstance(event, TaskStatusUpdateEvent):
            self.task_id, self.state = event.task_id, event.status.state
        elif isinstance(event, TaskArtifactUpdateEvent):
            self.task_id = self.task_id or event.task_id

    @property
    def running(self) -> bool:
        return bool(self.task_id) and self.state in RUNNING


# A task in these states goes on without a word from the caller; a stream may
# end in any other (an end, or input or auth required) and lose nothing.
RUNNING = frozenset({TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING})
