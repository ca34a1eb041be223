"""The A2A operations on a registered agent: the SDK's `RequestHandler`
behind `/a2a/{agent_id}`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
    validate_request_params,
)
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
)
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    TaskNotFoundError,
)
from a2a.utils.task import validate_history_length
from google.protobuf.json_format import MessageToDict

from gateway.agents.admission import Admission, admission_of, handler_context
from gateway.agents.approvals import APPROVAL_META as HELD_META
from gateway.agents.cards import proxied_card
from gateway.agents.exchange import OperationsHandler
from gateway.agents.push_configs import PushConfigs
from gateway.agents.stream_records import RUNNING
from gateway.agents.task_events import first_then_rest, list_own_tasks
from gateway.agents.tenants import without_tenants
from gateway.agents.upstream_streams import send_message_streaming
from gateway.connections.errors import ConnectionRequired
from gateway.delegation.runs import TERMINAL

logger = logging.getLogger(__name__)


@without_tenants
class AgentHandler(PushConfigs, OperationsHandler):
    """Every A2A operation on one registered agent, through the pipeline
    (`AgentCalls` holds how the agent is called; `PushConfigs` its push
    notifications)."""

    async def _deferred(self, admission: Admission, task_id: str) -> RequestHandler | None:
        """The handler of ``task_id`` if it is a held call's task: deferred by a
        coordination rule, or waiting for an approval the policy asks for on
        one skill (an approval on the whole agent sends every operation to
        the approvals handler already), or for its user to connect their
        account at the agent. Looked up only while the policy can hold a
        call, or the agent takes its users' own tokens."""
        if self.held is None:
            return None
        parts = self._parts()
        if not parts.delegations.policy.current.can_hold and (
            parts.consents is None or parts.consents.upstream(admission.grant) is None
        ):
            return None
        task = await self.tasks.get(admission.agent_id, admission.owner, task_id)
        return self.held if task is not None and HELD_META in task.metadata else None

    async def check_message(self, admission: Admission, message: Message) -> None:
        if message.role != Role.ROLE_USER:
            # A client's message is the user's (A2A 1.0, Message.role: ROLE_USER
            # from client to agent): an agent's SDK refuses any other with an
            # internal error (-32603), which would read as the agent failing.
            # An open enum: a number no name is defined for parses too.
            said = Role.Name(message.role) if message.role in Role.values() else message.role
            refusal = InvalidParamsError(f"message.role must be ROLE_USER, not {said}")
            await self.audit(admission, "SendMessage", refusal, "; not called")
            raise refusal
        for index, part in enumerate(message.parts):
            # A Part holds exactly one of text, raw, url, data (the `content`
            # oneof of a2a.proto); protobuf's JSON parser lets one through with
            # none (`""` parses as an empty Part), which no agent can read and
            # a 0.3 agent's translation fails on.
            if part.WhichOneof("content") is None:
                refusal = InvalidParamsError(
                    f"message.parts[{index}] has no content: one of text, raw, url or data"
                )
                await self.audit(admission, "SendMessage", refusal, "; not called")
                raise refusal
        if message.task_id:
            await self._own_task(admission, message.task_id)
        for referenced in message.reference_task_ids:
            await self._own_task(admission, referenced)
        if message.context_id:
            owners = await self.tasks.context_owners(admission.agent_id, message.context_id)
            if owners and owners != {admission.owner}:
                await self.audit(admission, "ownership", TaskNotFoundError())
                raise TaskNotFoundError(f"context {message.context_id} not found")

    # Messages -------------------------------------------------------------

    async def message(self, admission: Admission, params: SendMessageRequest) -> Task | Message:
        await self.check_message(admission, params.message)
        skill = await self._checked_skill(admission, params, "SendMessage")
        relay = await self._inline_push(admission, params, "SendMessage")
        task_id = ""  # the task the inline config is bound to: only one recorded as the caller's
        asked = admission
        async with contextlib.AsyncExitStack() as held:  # a fallback's call
            try:
                try:
                    admission, response = await self._send(
                        held,
                        admission,
                        skill,
                        "SendMessage",
                        lambda t, c: t.send_message(params, context=c),
                        self._take_answer,
                        plain=params,
                    )
                except ConnectionRequired as needed:
                    return await self.held_for_consent(asked, params, needed)
                if response.HasField("task"):
                    task_id = response.task.id
                    return response.task
                return response.message
            finally:
                if admission.agent_id != asked.agent_id:
                    # A fallback took the call: it was handed a relay of the agent
                    # asked, under which its task is not recorded. Not kept.
                    task_id = ""
                await self._settle_push(asked, relay, task_id)

    async def stream_message(
        self, admission: Admission, params: SendMessageRequest
    ) -> AsyncGenerator[Event]:
        capabilities = admission.grant.card.get("capabilities") or {}
        if not capabilities.get("streaming"):
            # The agent does not stream: its one answer is the whole stream.
            yield await self.message(admission, params)
            return
        await self.check_message(admission, params.message)
        skill = await self._checked_skill(admission, params, "SendStreamingMessage")
        async with contextlib.AsyncExitStack() as held:  # a fallback's call
            admission = await self._stream_target(held, admission, skill)
            relay = await self._inline_push(admission, params, "SendStreamingMessage")
            task_id = ""
            events = self._relay(
                admission,
                "SendStreamingMessage",
                lambda t, c: send_message_streaming(self.upstreams.raw, t, params, c),
            )
            try:
                try:
                    first = await anext(events)
                except ConnectionRequired as needed:  # before anything came
                    yield await self.held_for_consent(admission, params, needed)
                    return
                except StopAsyncIteration:
                    return
                # Closed here, not left to the garbage collector: the stream's
                # record is written as it closes, before whoever stops reading
                # (a flow's step at its task's end) stores the outcome.
                async with contextlib.aclosing(first_then_rest(first, events)) as rest:
                    async for event in rest:
                        if relay is not None and not task_id:
                            # `_relay` yields an event only once it is recorded as the
                            # caller's: bound before the client can ask for it.
                            task_id = _task_id_of(event)
                            if task_id:
                                await self._settle_push(admission, relay, task_id)
                        yield event
            finally:
                try:
                    await events.aclose()
                finally:
                    if relay is not None and not task_id:
                        await self._settle_push(admission, relay, "")

    # Tasks ----------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        validate_history_length(params)
        return await self._get_task(admission_of(context), params, context)

    async def task(self, admission: Admission, task_id: str) -> Task:
        return await self._get_task(admission, GetTaskRequest(id=task_id))

    async def _get_task(
        self, admission: Admission, params: GetTaskRequest, context: ServerCallContext | None = None
    ) -> Task:
        """``context``: the door's (None: a caller inside the gateway's)."""
        held = await self._deferred(admission, params.id)
        if held is not None:
            context = context or handler_context(admission)
            return await held.on_get_task(params, context)  # type: ignore[return-value]
        await self._own_task(admission, params.id)
        try:
            task = await self._call(
                admission,
                "GetTask",
                lambda t, c: t.get_task(params, context=c),
                idempotent=True,
                accept=self.remember,
            )
        except (InternalError, TaskNotFoundError):
            # The agent cannot be reached, or no longer knows the task (it
            # restarted): an end the gateway recorded (its own verdict after
            # losing contact, say) still stands; a running task is reconciled.
            recorded = await self.tasks.get(admission.agent_id, admission.owner, params.id)
            if recorded is not None and recorded.status.state in TERMINAL:
                return recorded
            if recorded is not None and recorded.status.state in RUNNING:
                await self.lost_contact(admission, params.id)
            raise
        return task

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        # Answered from the gateway's records: only the caller's tasks, for
        # every agent, whether or not the agent itself implements ListTasks.
        admission = admission_of(context)
        page = await list_own_tasks(self.tasks, admission.agent_id, admission.owner, params)
        await self.audit(admission, "ListTasks", None)
        return page

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        return await self._cancel(admission_of(context), params, context)

    async def cancel(self, admission: Admission, task_id: str) -> Task:
        return await self._cancel(admission, CancelTaskRequest(id=task_id))

    async def _cancel(
        self,
        admission: Admission,
        params: CancelTaskRequest,
        context: ServerCallContext | None = None,
    ) -> Task:
        """``context``: the door's (None: a caller inside the gateway's)."""
        held = await self._deferred(admission, params.id)
        if held is not None:
            context = context or handler_context(admission)
            return await held.on_cancel_task(params, context)  # type: ignore[return-value]
        await self._own_task(admission, params.id)
        return await self._call(
            admission,
            "CancelTask",
            lambda t, c: t.cancel_task(params, context=c),
            accept=self.remember,
        )

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        events = self._subscribe(admission_of(context), params, context)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    def subscribe(self, admission: Admission, task_id: str) -> AsyncGenerator[Event]:
        return self._subscribe(admission, SubscribeToTaskRequest(id=task_id))

    async def _subscribe(
        self,
        admission: Admission,
        params: SubscribeToTaskRequest,
        context: ServerCallContext | None = None,
    ) -> AsyncGenerator[Event]:
        """``context``: the door's (None: a caller inside the gateway's)."""
        held = await self._deferred(admission, params.id)
        if held is not None:
            context = context or handler_context(admission)
            async with contextlib.aclosing(held.on_subscribe_to_task(params, context)) as events:
                async for event in events:
                    yield event
            return
        await self._own_task(admission, params.id)
        relayed = self._relay(
            admission, "SubscribeToTask", lambda t, c: t.subscribe(params, context=c)
        )
        async with contextlib.aclosing(relayed):
            async for event in relayed:
                yield event

    # Push notification configs ----------------------------------------------

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
        card = MessageToDict(extended)
        # Only the skills this caller may call, as every listing of skills:
        # decided on the registered card, as a call is (a skill the extended
        # card alone names is unknown to the decision, so refused anyway).
        usable = self.delegations.usable_skills(
            admission.grant.caller, admission.agent_id, admission.grant.card
        )
        ids = {skill["id"] for skill in usable}
        card["skills"] = [s for s in card.get("skills", []) if s.get("id") in ids]
        return await self.card_for(admission.agent_id, card)

    async def card_for(self, agent_id: str, upstream_card: dict[str, Any]) -> AgentCard:
        parts = self._parts()
        url = f"{parts.public_url}/a2a/{agent_id}"
        card = proxied_card(upstream_card, url, parts.token_endpoint, parts.grpc_target, agent_id)
        return await parts.sign(card)


def _task_id_of(event: Event) -> str:
    """The task a stream event is about: a Task's id, an update's task_id; a
    Message alone makes no task."""
    if isinstance(event, Task):
        return str(event.id)
    if isinstance(event, Message):
        return ""
    return str(event.task_id)
