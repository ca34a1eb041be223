"""Gateway-run agents (OpenAI-compatible, REST webhooks) behind the A2A front door.

The front door admits the caller exactly as for an A2A agent (authenticate,
`Delegations.admit`: decide and mint) and hands the request here when the
agent's card carries the gateway-run mark (`registry.vendor_cards`). Each
message becomes one task the gateway owns and runs (`gateway.delegation.task_runner`):

* the message's text parts (joined) and first data part become the adapter's
  `Turn`; its skill is the one the front door decided the call for
  (`gateway.delegation.handoffs.skill_of`: ``metadata.skill`` of the request
  and of the message, which must agree, or the agent's only skill) -- the
  adapter hands the upstream that one (a webhook's ``skill`` field or
  ``{{skill}}`` placeholder, an OpenAI-compatible agent's skill instructions),
  and none when a message names none to an agent with several;
* `SendMessage` waits for the task to end and answers it -- or, with
  ``returnImmediately``, answers the submitted task at once;
  `SendStreamingMessage` answers the task, then its status and artifact
  updates as the upstream streams;
* `GetTask`, `ListTasks` answer from the task records, `CancelTask` stops the
  call, `SubscribeToTask` follows a running task;
* the reply becomes one artifact: its text as a text part, its data as a
  data part. An upstream failure is a failed task whose status message says
  what failed; a message the upstream cannot be called with (a mapping that
  needs a value the message lacks) is InvalidParamsError and starts nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
    validate_request_params,
)
from a2a.types import (
    CancelTaskRequest,
    Message,
    SendMessageRequest,
    Task,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    A2AError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict

from adapters.base import Turn
from adapters.errors import InputInvalid
from gateway.agents.admission import Admission, FrontDoorParts, admission_of
from gateway.agents.exchange import OperationsHandler
from gateway.agents.recorded import RecordedTaskHandler
from gateway.agents.upstream_errors import outcome_of
from gateway.connections.errors import UserCredentialUnavailable
from gateway.delegation.handoffs import checked_skill
from gateway.delegation.runs import TERMINAL, RunSpec, sending
from gateway.delegation.task_runner import RunNotFound, TaskRunner
from gateway.delegation.vendor_agents import (
    CredentialUnavailable,
    VendorAgents,
    VendorCall,
)
from policies.keys import KeySealError
from registry.vendor_cards import gateway_run_kind

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class GatewayRun:
    """What the handler needs besides the front door's parts."""

    vendors: VendorAgents
    runner: TaskRunner


class VendorAgentHandler(RecordedTaskHandler, OperationsHandler):
    no_push = "this agent's tasks send no notifications"
    no_extended_card = "this agent has no extended card"

    def __init__(self, parts: Callable[[], FrontDoorParts], run: Callable[[], GatewayRun]) -> None:
        self._parts = parts
        self._run = run

    @property
    def handler(self) -> RequestHandler:
        """The front door's `GatewayRunAgents`: this handler serves them all."""
        return self

    @staticmethod
    def serves(card: dict[str, Any]) -> bool:
        return gateway_run_kind(card) is not None

    async def audit(self, admission: Admission, operation: str, error: A2AError | None) -> None:
        outcome = outcome_of(error)
        detail = None if error is None else str(error)[:500]
        # A message accepted is not the call's end: the run records that ("a2a.run").
        accepted = error is None and operation in ("SendMessage", "SendStreamingMessage")
        await self._parts().delegate.record(
            admission.grant, f"a2a.{operation}", outcome, detail, ends_call=not accepted
        )

    # Messages -------------------------------------------------------------

    async def _begin(
        self, params: SendMessageRequest, admission: Admission, *, stream: bool
    ) -> Task:
        """Check the message, record its task and start the call."""
        await self._may_begin(params, admission)
        message = params.message
        parts = self._parts()
        call = await self._call(admission)
        if call.config.user_oauth is not None and admission.connection is None:
            # Other doors than A2A's admission (an MCP client, a flow step)
            # learn here, before a task starts, that the user must connect
            # first: each says so in its own protocol (`ConnectionRequired`).
            await _connected(parts, admission)
        # The adapter is told the skill the call was decided for, and no other.
        skill = checked_skill(
            admission.agent_id,
            admission.grant.card,
            admission.skill,
            params,
            task_id=admission.task_id,
        )
        task = Task(id=str(uuid.uuid4()), context_id=message.context_id or str(uuid.uuid4()))
        task.status.state = TaskState.TASK_STATE_SUBMITTED
        turn = _turn(message, skill, task)
        try:
            call.adapter.check(turn)
        except InputInvalid as exc:
            raise InvalidParamsError(str(exc)) from None
        history = task.history.add()
        history.CopyFrom(message)
        history.task_id, history.context_id = task.id, task.context_id
        # The upstream streams only to a caller who streams too.
        capabilities = admission.grant.card.get("capabilities") or {}
        streaming = stream and bool(capabilities.get("streaming"))
        spec = RunSpec(
            agent_id=admission.agent_id,
            task_id=task.id,
            context_id=task.context_id,
            caller=admission.grant.caller,
            trace_id=admission.grant.trace_id,
            turn=turn,
            streaming=streaming,
            sent=sending(admission.grant, "a2a.run"),
        )
        runner = self._run().runner
        # The task and its run in one transaction: an outage between two
        # would leave a task recorded that no run will ever end.
        recorded = await parts.tasks.record(
            admission.agent_id,
            admission.owner,
            task,
            admission.task_skill,
            with_rows=runner.stored(spec),
        )
        if not recorded:  # a fresh id taken: nothing stored, nothing to run
            raise InternalError(f"task {task.id} could not be recorded")
        await runner.start(spec, admission.grant, new=False)
        return task

    async def _may_begin(self, params: SendMessageRequest, admission: Admission) -> None:
        """Refused before anything starts: a push config, a message to an
        existing task (each is a task of its own), another user's task or
        context."""
        if params.configuration.HasField("task_push_notification_config"):
            raise PushNotificationNotSupportedError("this agent's tasks send no notifications")
        message = params.message
        if message.task_id:
            await self._own(admission, message.task_id)
            raise UnsupportedOperationError(
                f"task {message.task_id}: each message to this agent is a task of its own; "
                "send a new message (with the same contextId to stay in the conversation)"
            )
        for referenced in message.reference_task_ids:
            await self._own(admission, referenced)
        if message.context_id:
            owners = await self._parts().tasks.context_owners(
                admission.agent_id, message.context_id
            )
            if owners and owners != {admission.owner}:
                raise TaskNotFoundError(f"context {message.context_id} not found")

    async def _missing(
        self, admission: Admission, operation: str, missing: UserCredentialUnavailable
    ) -> Exception:
        """The user's own account at the agent is not connected (nothing
        started): recorded; the A2A door -- whose admission holds a message
        until its user connects, so this is a connection lost since --
        answers an A2A error with the link, the other doors say it their way."""
        parts = self._parts()
        await parts.delegate.record(
            admission.grant, f"a2a.{operation}", missing.outcome, missing.reason
        )
        return InvalidRequestError(str(missing)) if admission.holds_for_consent else missing

    async def _call(self, admission: Admission) -> VendorCall:
        try:
            call = await self._run().vendors.call_for(admission.agent_id)
        except CredentialUnavailable as exc:
            raise InternalError(f"agent {admission.agent_id}: {exc}") from None
        if call is None:
            raise InternalError(f"agent {admission.agent_id} has no upstream configuration")
        return call

    async def message(self, admission: Admission, params: SendMessageRequest) -> Task | Message:
        try:
            task = await self._begin(params, admission, stream=False)
        except A2AError as error:
            await self.audit(admission, "SendMessage", error)
            raise
        except UserCredentialUnavailable as missing:
            raise await self._missing(admission, "SendMessage", missing) from None
        await self.audit(admission, "SendMessage", None)
        if not params.configuration.return_immediately:
            await self._run().runner.wait(admission.agent_id, task.id)
        return await self._own(admission, task.id)

    async def stream_message(
        self, admission: Admission, params: SendMessageRequest
    ) -> AsyncGenerator[Event]:
        try:
            task = await self._begin(params, admission, stream=True)
        except A2AError as error:
            await self.audit(admission, "SendStreamingMessage", error)
            raise
        except UserCredentialUnavailable as missing:
            raise await self._missing(admission, "SendStreamingMessage", missing) from None
        await self.audit(admission, "SendStreamingMessage", None)
        async for event in self._follow(admission, task):
            yield event

    async def _follow(self, admission: Admission, task: Task) -> AsyncIterator[Event]:
        """The task, then its events until it ends: from the run when it runs
        here, else from the records."""
        runner = self._run().runner
        try:
            events = runner.events(admission.agent_id, task.id)
        except RunNotFound:  # it runs on another replica, or has just ended
            pass
        else:
            yield task
            async for event in events:
                yield event
            return
        yield task
        tasks = self._parts().tasks
        while task.status.state not in TERMINAL:
            await asyncio.sleep(POLL_SECONDS)
            latest = await tasks.get(admission.agent_id, admission.owner, task.id)
            if latest is None:
                return
            if latest.status.state != task.status.state:
                update = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
                update.status.CopyFrom(latest.status)
                yield update
            task = latest

    # Tasks ----------------------------------------------------------------

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        return await self.cancel(admission_of(context), params.id)

    async def cancel(self, admission: Admission, task_id: str) -> Task:
        task = await self._own(admission, task_id)
        if task.status.state in TERMINAL or not await self._run().runner.cancel(
            admission.agent_id, task_id
        ):
            error = TaskNotCancelableError(f"task {task_id} has ended")
            await self.audit(admission, "CancelTask", error)
            raise error
        await self.audit(admission, "CancelTask", None)
        return await self._own(admission, task_id)


async def _connected(parts: FrontDoorParts, admission: Admission) -> None:
    """Raises `ConnectionRequired` unless the caller has connected their own
    account at this `user_oauth` vendor agent."""
    consents = parts.consents
    upstream = None
    if consents is not None:
        try:
            upstream = await consents.upstream_of(admission.agent_id, admission.grant.card)
        except CredentialUnavailable as exc:
            raise InternalError(f"agent {admission.agent_id}: {exc}") from None
    if consents is None or upstream is None:
        raise InternalError(
            f"agent {admission.agent_id} takes each user's own account, "
            "and connected accounts are not available on this gateway"
        )
    try:
        await consents.connection(admission.grant, upstream)
    except KeySealError:  # the vault's sealing secret changed
        raise InternalError(
            f"agent {admission.agent_id}: the connection cannot be opened"
        ) from None


def _turn(message: Message, skill: str | None, task: Task) -> Turn:
    texts: list[str] = []
    data: Any = None
    for part in message.parts:
        if part.HasField("text"):
            texts.append(part.text)
        elif part.HasField("data"):
            if data is None:
                data = MessageToDict(part.data)
        else:
            raise InvalidParamsError("this agent takes text and data parts, not files")
    return Turn(
        text="\n".join(texts),
        data=data,
        skill=skill,
        task_id=task.id,
        context_id=task.context_id,
    )
