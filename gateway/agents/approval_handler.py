"""The A2A operations on an agent whose calls wait for approval
(`gateway.agents.approvals`): a request held and answered with the task the
gateway owns, that task followed through the decision and the call, withdrawn
or cancelled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable

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
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.agents.admission import Admission, FrontDoorParts, admission_of
from gateway.agents.approvals import APPROVAL_META, ApprovalParts, end_task
from gateway.agents.recorded import RecordedTaskHandler
from gateway.agents.upstream_errors import outcome_of
from gateway.connections.errors import ScopeRequired
from gateway.delegation.approvals import (
    APPROVED,
    PENDING,
    WITHDRAWN,
    AlreadyDecided,
    Approval,
    NewApproval,
    new_id,
)
from gateway.delegation.handoffs import check_contract, checked_skill
from gateway.delegation.runs import ENDS, TERMINAL, status_message
from gateway.delegation.task_runner import RunNotFound

POLL_SECONDS = 0.5
CONNECT_META = "connect_url"  # as an MCP server served as an agent says it


def _ended(task: Task, approval: Approval | None) -> bool:
    """Whether a follower has seen all there is: the task ended, or the
    approved call paused (input or auth required upstream) and finished."""
    if task.status.state in TERMINAL:
        return True
    if approval is None or approval.state != APPROVED:
        return False
    return approval.outcome not in (None, "running")


class ApprovalAgentHandler(RecordedTaskHandler):
    no_push = "not for calls that wait for approval"
    no_extended_card = "not while calls to this agent need approval"

    """The A2A operations on an agent whose calls need approval."""

    def __init__(
        self, parts: Callable[[], FrontDoorParts], approvals: Callable[[], ApprovalParts]
    ) -> None:
        self._parts = parts
        self._approvals = approvals

    @property
    def handler(self) -> RequestHandler:
        return self

    async def audit(self, admission: Admission, operation: str, error: A2AError | None) -> None:
        outcome = outcome_of(error)
        detail = None if error is None else str(error)[:500]
        await self._parts().delegate.record(admission.grant, f"a2a.{operation}", outcome, detail)

    # Messages -------------------------------------------------------------

    async def _hold(self, params: SendMessageRequest, admission: Admission) -> Task:
        """Record the request as a pending approval and its task; call nothing."""
        skill = await self._checked(params, admission)
        approval_id = new_id()
        task, said = _held_task(params.message, admission, approval_id)
        held = NewApproval(
            kind="a2a",
            permit=admission.grant,
            action_kind="skill",
            request=MessageToDict(params),
            action=skill,
            task_id=task.id,
            context_id=task.context_id,
        )
        approval = await self._record(admission, task, held, approval_id)
        store = self._approvals().approvals
        store.told_held(approval)
        if admission.deferral is not None:
            await store.audit(approval, "a2a.SendMessage", "deferred", said[:2000])
        elif admission.consent is not None:
            await store.audit(approval, "a2a.SendMessage", admission.consent.outcome, said[:2000])
        else:
            await store.audit_request(approval, "a2a.SendMessage")
        return task

    async def _checked(self, params: SendMessageRequest, admission: Admission) -> str | None:
        """The skill the request is held for, once it is known it may be held:
        refused now, not after an admin approved it."""
        if params.configuration.HasField("task_push_notification_config"):
            raise PushNotificationNotSupportedError(
                "push configs are not relayed for calls that wait for approval"
            )
        parts, store = self._parts(), self._approvals().approvals
        # The request held, and replayed once approved, names the skill it was
        # decided for and no other; that is also the skill the admin is shown.
        grant = admission.grant
        skill = checked_skill(
            admission.agent_id, grant.card, admission.skill, params, task_id=admission.task_id
        )
        message = params.message
        # Refused now, not after an admin approved it (`check_contract`).
        check_contract(admission.agent_id, grant.card, grant.agent.skill_contracts, skill, message)
        if message.task_id:
            # Continuing one of the caller's own tasks (say one that asked for
            # input) is a new request to approve; an approval's own task is not.
            await self._own(admission, message.task_id)
            if await store.by_task(admission.agent_id, message.task_id) is not None:
                raise UnsupportedOperationError(
                    f"task {message.task_id} is a request for approval; send a new message"
                )
        for referenced in message.reference_task_ids:
            await self._own(admission, referenced)
        if message.context_id:
            owners = await parts.tasks.context_owners(admission.agent_id, message.context_id)
            if owners and owners != {admission.owner}:
                raise TaskNotFoundError(f"context {message.context_id} not found")
        return skill

    async def _record(
        self, admission: Admission, task: Task, held: NewApproval, approval_id: str
    ) -> Approval:
        """The task, its approval and its wait (a deferral, a user's consent)
        stored together."""
        parts, store = self._parts(), self._approvals().approvals
        deferrals = self._approvals().deferrals
        deferral, consent = admission.deferral, admission.consent
        stored: list[Approval] = []

        async def hold(conn: AsyncConnection) -> None:
            stored.append(await store.create(held, approval_id, conn=conn))
            if deferral is not None:
                assert deferrals is not None
                await deferrals.add(approval_id, deferral, conn=conn)
            if consent is not None:
                assert parts.consents is not None
                owner = admission.owner
                await parts.consents.hold(
                    approval_id,
                    consent.upstream,
                    owner.subject,
                    owner.issuer,
                    conn,
                    refused=consent.kept if isinstance(consent, ScopeRequired) else None,
                )

        # The task, its approval and its wait in one transaction: an outage
        # between them would leave a task that no decision can ever end.
        if not await parts.tasks.record(
            admission.agent_id, admission.owner, task, admission.task_skill, with_rows=hold
        ):
            raise InternalError(f"task {task.id} could not be recorded")
        (approval,) = stored
        return approval

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        # AUTH_REQUIRED is an interrupted state: even a blocking send answers now.
        return await self._held(params, admission_of(context), "SendMessage")

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        yield await self._held(params, admission_of(context), "SendStreamingMessage")

    async def _held(self, params: SendMessageRequest, admission: Admission, operation: str) -> Task:
        try:
            return await self._hold(params, admission)
        except InvalidParamsError as refusal:  # its skill: nothing is held
            await self.audit(admission, operation, refusal)
            raise

    # Tasks ----------------------------------------------------------------

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        admission = admission_of(context)
        task = await self._own(admission, params.id)
        desk = self._approvals()
        approval = await desk.approvals.by_task(admission.agent_id, params.id)
        if approval is not None and approval.state == PENDING:
            try:
                withdrawn = await desk.approvals.decide(
                    approval.id, WITHDRAWN, admission.owner.subject, "withdrawn by the requester"
                )
            except AlreadyDecided:
                pass  # decided meanwhile: stop the call, if it runs
            else:
                await desk.approvals.audit_decision(withdrawn)
                ended = await end_task(
                    self._parts(), withdrawn, TaskState.TASK_STATE_CANCELED, "withdrawn"
                )
                await self.audit(admission, "CancelTask", None)
                return ended
        if task.status.state in ENDS or not await desk.runner.cancel(admission.agent_id, params.id):
            error = TaskNotCancelableError(f"task {params.id} cannot be canceled now")
            await self.audit(admission, "CancelTask", error)
            raise error
        await self.audit(admission, "CancelTask", None)
        return await self._own(admission, params.id)

    async def _follow(self, admission: Admission, task: Task) -> AsyncIterator[Event]:
        """The task, then its updates through the decision and the call."""
        desk, tasks = self._approvals(), self._parts().tasks
        yield task
        while True:
            approval = await desk.approvals.by_task(admission.agent_id, task.id)
            if _ended(task, approval):
                return
            try:
                events = desk.runner.events(admission.agent_id, task.id)
            except RunNotFound:  # pending, or running on another replica
                await asyncio.sleep(POLL_SECONDS)
                latest = await tasks.get(admission.agent_id, admission.owner, task.id)
                if latest is None:
                    return
                if latest.status != task.status:
                    update = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
                    update.status.CopyFrom(latest.status)
                    yield update
                task = latest
                continue
            async for event in events:
                yield event
            return


def _held_task(message: Message, admission: Admission, approval_id: str) -> tuple[Task, str]:
    """The task a held request answers with, and what its status says."""
    task = Task(id=str(uuid.uuid4()), context_id=message.context_id or str(uuid.uuid4()))
    deferral, consent = admission.deferral, admission.consent
    if deferral is not None:
        # Waiting for something other agents do, not for anyone's
        # permission: submitted, not yet started (A2A 1.0 TaskState).
        task.status.state = TaskState.TASK_STATE_SUBMITTED
        said = (
            f"deferred: {deferral.reason}; {admission.agent_id} is called once that "
            f"ends (deferral {approval_id}); follow this task for the outcome"
        )
    elif consent is not None:
        # A2A 1.0 §7.3.3: the client gets the user's consent out of band
        # (the link); the task goes on by itself once it is given.
        task.status.state = TaskState.TASK_STATE_AUTH_REQUIRED
        said = (
            f"{admission.agent_id} acts with your own account there: {consent.reason}. "
            f"Connect it at {consent.connect_url}; this task goes on once you have "
            f"(held as {approval_id})"
        )
    else:
        task.status.state = TaskState.TASK_STATE_AUTH_REQUIRED
        said = (
            f"an admin must approve this request before {admission.agent_id} is called "
            f"(approval {approval_id}); follow this task for the outcome"
        )
    task.status.message.CopyFrom(status_message(task.id, task.context_id, said))
    task.status.message.metadata.update({APPROVAL_META: approval_id})
    task.metadata.update({APPROVAL_META: approval_id})
    if consent is not None:
        for meta in (task.metadata, task.status.message.metadata):
            meta.update({CONNECT_META: consent.connect_url})
    history = task.history.add()
    history.CopyFrom(message)
    if not message.task_id:
        history.task_id = task.id
    history.context_id = task.context_id
    return task, said
