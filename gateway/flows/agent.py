"""A flow is an agent: its card, and its A2A operations at `/a2a/{flow_id}`.

The card (written by the gateway, stored in the registry under the flow's
id, a new card version with each flow version) has one skill, ``run``, whose
contract is the flow's input schema, and the gateway-run mark with kind
``flow``: the front door admits a caller exactly as for any agent (the policy
decides on the flow's id; a denial never starts a run) and hands the request
to `FlowAgentHandler` (`gateway.agents.gateway_run`). Being in the registry, a
flow is listed, searchable, callable from another flow, and offered on
`/mcp` as the tool ``{flow_id}__run``.

The A2A task IS the run (task id = run id): `SendMessage` starts a run and
answers when it ends or stops at a checkpoint (at once with
``returnImmediately``); `GetTask` shows its progress (the status message
names the step); a checkpoint is ``TASK_STATE_INPUT_REQUIRED`` (decided on the
approvals desk, not by a message), and so is a question a step's agent asks,
which the run's user answers with a message to the task
(`gateway.flows.questions`); `CancelTask` cancels the run. The input is
the message's first data part (else ``{"text": <its text>}``), checked
against the input schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.jsonrpc_models import JSONRPCError
from a2a.server.request_handlers import response_helpers
from a2a.server.request_handlers.request_handler import validate_request_params
from a2a.types import (
    CancelTaskRequest,
    Message,
    SendMessageRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils import errors as sdk_errors
from a2a.utils.errors import (
    A2AError,
    ErrorMapping,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict

from gateway.agents.admission import Admission, FrontDoorParts, admission_of
from gateway.agents.exchange import OperationsHandler
from gateway.agents.recorded import RecordedTaskHandler
from gateway.agents.upstream_errors import outcome_of
from gateway.delegation.runs import TERMINAL
from gateway.flows.costs import BudgetSpent
from gateway.flows.questions import NotAsking
from gateway.flows.service import FlowService, InputInvalid

POLL_SECONDS = 0.25
# The gateway's "refused to delegate" (JSON-RPC's implementation-defined
# server errors, -32000..-32099): the A2A door answers a policy's refusal so.
BUDGET_SPENT = -32000
# How long a message answering a run's question waits for the run to take it.
ANSWER_TAKEN_SECONDS = 10.0
_STOPS = TERMINAL | {TaskState.TASK_STATE_INPUT_REQUIRED}


class BudgetSpentError(A2AError):
    """The caller's budget for the flow is spent (`gateway.flows.costs`)."""

    message = "The budget for this flow is spent"


def _register() -> None:
    """Teach the SDK's error tables the budget's refusal (JSON-RPC code, HTTP
    403 and gRPC PERMISSION_DENIED), as it knows its own errors."""
    sdk_errors.JSON_RPC_ERROR_CODE_MAP[BudgetSpentError] = BUDGET_SPENT
    sdk_errors.A2A_ERROR_MAPPING[BudgetSpentError] = ErrorMapping(
        403, "PERMISSION_DENIED", "BUDGET_SPENT"
    )
    sdk_errors.A2A_ERROR_REASONS[BudgetSpentError] = "BUDGET_SPENT"
    response_helpers.EXCEPTION_MAP[BudgetSpentError] = JSONRPCError


_register()


class FlowAgentHandler(RecordedTaskHandler, OperationsHandler):
    no_push = "a flow's runs send no push notifications"
    no_extended_card = "a flow has no extended card"

    def __init__(
        self, parts: Callable[[], FrontDoorParts], service: Callable[[], FlowService]
    ) -> None:
        super().__init__(parts)
        self._service = service

    async def audit(self, admission: Any, operation: str, error: Any) -> None:
        outcome = outcome_of(error)
        detail = None if error is None else str(error)[:500]
        await self._parts().delegate.record(admission.grant, f"a2a.{operation}", outcome, detail)

    async def _start(self, params: SendMessageRequest, admission: Admission) -> Task:
        if params.configuration.HasField("task_push_notification_config"):
            raise PushNotificationNotSupportedError(self.no_push)
        message = params.message
        if message.task_id:
            return await self._answer(admission, message)
        try:
            run_id = await self._service().start(
                admission.agent_id,
                _input(message),
                caller=admission.grant.caller,
                granted=admission.grant.decision.granted,
                trace_id=admission.grant.trace_id,
                context_id=message.context_id or None,
            )
        except InputInvalid as exc:
            raise InvalidParamsError(str(exc), data={"errors": exc.errors}) from None
        except BudgetSpent as spent:
            raise BudgetSpentError(str(spent)) from None
        return await self._own(admission, run_id)

    async def _answer(self, admission: Admission, message: Message) -> Task:
        """A message to a run's task answers the question its step's agent
        asked (A2A: a client answers ``input-required`` on the same task);
        the task once the run has taken it."""
        asked = await self._own(admission, message.task_id)
        try:
            await self._service().answer(
                message.task_id, admission.owner, _reply(message), _round(message)
            )
        except NotAsking:
            raise UnsupportedOperationError(
                f"run {message.task_id} waits for no answer (a checkpoint is decided on the "
                "approvals desk); send a new message to start another run"
            ) from None
        return await self._taken(admission, asked)

    async def _taken(self, admission: Admission, asked: Task) -> Task:
        """The run's task once it no longer shows the question answered (the
        workflow takes the answer within the engine's notification poll)."""
        before = asked.status.SerializeToString()
        deadline = asyncio.get_running_loop().time() + ANSWER_TAKEN_SECONDS
        with self._parts().tasks.watch(admission.agent_id, asked.id) as watch:
            while True:
                task = await self._own(admission, asked.id)
                left = deadline - asyncio.get_running_loop().time()
                if task.status.SerializeToString() != before or left <= 0:
                    return task
                # Woken by this process's record of the run's task; looked
                # at every POLL_SECONDS for a run at another replica.
                await watch.next(min(POLL_SECONDS, left))

    async def message(self, admission: Admission, params: SendMessageRequest) -> Task | Message:
        try:
            task = await self._start(params, admission)
        except Exception as error:
            await self.audit(admission, "SendMessage", error)
            raise
        await self.audit(admission, "SendMessage", None)
        if params.configuration.return_immediately:
            return task
        async for _ in self._follow(admission, task):
            pass
        return await self._own(admission, task.id)

    async def stream_message(
        self, admission: Admission, params: SendMessageRequest
    ) -> AsyncGenerator[Event]:
        try:
            task = await self._start(params, admission)
        except Exception as error:
            await self.audit(admission, "SendStreamingMessage", error)
            raise
        await self.audit(admission, "SendStreamingMessage", None)
        async for event in self._follow(admission, task):
            yield event

    async def _follow(self, admission: Any, task: Task) -> AsyncIterator[Event]:
        """The task, then each change of its status, until it ends or waits
        at a checkpoint (then the result artifact, if it completed)."""
        yield task
        tasks = self._parts().tasks
        seen = (task.status.state, task.status.message.SerializeToString())
        with tasks.watch(admission.agent_id, task.id) as watch:
            while task.status.state not in _STOPS:
                # Woken as soon as this process records the run's task; a run
                # going on at another replica is seen by the look every POLL_SECONDS.
                await watch.next(POLL_SECONDS)
                latest = await tasks.get(admission.agent_id, admission.owner, task.id)
                if latest is None:
                    return
                now = (latest.status.state, latest.status.message.SerializeToString())
                if now != seen:
                    for artifact in latest.artifacts:
                        yield TaskArtifactUpdateEvent(
                            task_id=task.id, context_id=task.context_id, artifact=artifact
                        )
                    update = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
                    update.status.CopyFrom(latest.status)
                    # The task's metadata goes with it (the event's `metadata`): at the
                    # end, the run's summed usage, which a caller records.
                    update.metadata.CopyFrom(latest.metadata)
                    yield update
                    seen = now
                task = latest

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        return await self.cancel(admission_of(context), params.id)

    async def cancel(self, admission: Admission, task_id: str) -> Task:
        task = await self._own(admission, task_id)
        if task.status.state in TERMINAL:
            error = TaskNotCancelableError(f"run {task_id} has ended")
            await self.audit(admission, "CancelTask", error)
            raise error
        await self._service().cancel(task_id, by=admission.owner.subject)
        await self.audit(admission, "CancelTask", None)
        return await self._own(admission, task_id)


def _round(message: Message) -> int | None:
    """The question a message says it answers (``metadata.round``, as the
    run's task shows it in ``metadata.question.round``), if it says."""
    said = MessageToDict(message.metadata).get("round") if message.HasField("metadata") else None
    if said is None:
        return None
    if not isinstance(said, int | float) or said != int(said) or not 1 <= said <= 1000:
        raise InvalidParamsError("metadata.round is the number of the question answered")
    return int(said)


def _reply(message: Message) -> dict[str, Any]:
    """An answer's text and (first) data part."""
    reply: dict[str, Any] = {}
    texts = [part.text for part in message.parts if part.HasField("text") and part.text.strip()]
    if texts:
        reply["text"] = "\n".join(texts)
    for part in message.parts:
        if part.HasField("data"):
            value = MessageToDict(part.data)
            if not isinstance(value, Mapping):
                raise InvalidParamsError("an answer's data is an object (a data part)")
            if value:
                reply["data"] = dict(value)
            break
    if not reply:
        raise InvalidParamsError("an answer has a text or a data part")
    return reply


def _input(message: Message) -> dict[str, Any]:
    texts = []
    for part in message.parts:
        if part.HasField("data"):
            value = MessageToDict(part.data)
            if not isinstance(value, Mapping):
                raise InvalidParamsError("a flow's input is an object (a data part)")
            return dict(value)
        if part.HasField("text"):
            texts.append(part.text)
    return {"text": "\n".join(texts)}
