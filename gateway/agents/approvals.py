"""A2A calls that wait for a human's approval (`gateway.delegation.approvals`).

The front door hands a request here when the policy wants an admin to
approve calls to the agent (`Delegations.admit` raised `ApprovalRequired`).
Nothing reaches the agent until then:

* `SendMessage` / `SendStreamingMessage` answer at once with a task the
  gateway owns, in ``TASK_STATE_AUTH_REQUIRED``; its status message says an
  admin must approve and names the approval (text and ``metadata.approval``);
* `GetTask`, `ListTasks` answer from the task records; `SubscribeToTask`
  follows the task through the decision and the call to its end;
  `CancelTask` withdraws a pending request (or stops the approved call);
* approved (`ApprovalDesk.decide`), the call becomes a gateway-run task
  (`gateway.delegation.task_runner`, so it survives the replica that started it),
  made by `gateway.agents.approved`. Rejected, the task ends
  ``TASK_STATE_REJECTED`` with the admin's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import Turn
from gateway.agents.admission import Admission, FrontDoorParts, admission_of
from gateway.agents.consents import RELEASED_BY
from gateway.agents.recorded import RecordedTaskHandler
from gateway.agents.upstream_errors import outcome_of
from gateway.connections.errors import ScopeRequired
from gateway.delegation.approvals import (
    APPROVED,
    PENDING,
    REJECTED,
    WITHDRAWN,
    AlreadyDecided,
    Approval,
    ApprovalNotFound,
    Approvals,
    NewApproval,
    State,
    new_id,
)
from gateway.delegation.deferrals import DECIDED_BY, Deferrals
from gateway.delegation.handoffs import admitted_skill, check_contract
from gateway.delegation.runs import ENDS, TERMINAL, RunSpec, status_message
from gateway.delegation.task_runner import RunNotFound, TaskRunner

POLL_SECONDS = 0.5
APPROVAL_META = "approval"
CONNECT_META = "connect_url"  # as an MCP server served as an agent says it


@dataclass(frozen=True)
class ApprovalParts:
    approvals: Approvals
    runner: TaskRunner
    deferrals: Deferrals | None = None  # calls a coordination rule defers


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
        if params.configuration.HasField("task_push_notification_config"):
            raise PushNotificationNotSupportedError(
                "push configs are not relayed for calls that wait for approval"
            )
        parts, store = self._parts(), self._approvals().approvals
        # The request held, and replayed once approved, names the skill it was
        # decided for and no other; that is also the skill the admin is shown.
        grant = admission.grant
        skill = admitted_skill(
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
        approval_id = new_id()
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
        held = NewApproval(
            kind="a2a",
            permit=admission.grant,
            action_kind="skill",
            request=MessageToDict(params),
            action=skill,
            task_id=task.id,
            context_id=task.context_id,
        )
        deferrals = self._approvals().deferrals
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
        store.told_held(approval)
        if deferral is not None:
            await store.audit(approval, "a2a.SendMessage", "deferred", said[:2000])
        elif consent is not None:
            await store.audit(approval, "a2a.SendMessage", consent.outcome, said[:2000])
        else:
            await store.audit_request(approval, "a2a.SendMessage")
        return task

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


def _approved_run(approval: Approval, task_id: str) -> RunSpec:
    """The call an approval lets go, as the task runner makes it."""
    context_id = approval.context_id or ""
    return RunSpec(
        agent_id=approval.target,
        task_id=task_id,
        context_id=context_id,
        caller=approval.caller(),
        trace_id=approval.trace_id,
        turn=Turn(text="", skill=approval.action, task_id=task_id, context_id=context_id),
        streaming=True,
    )


async def end_task(parts: FrontDoorParts, approval: Approval, state: TaskState, verb: str) -> Task:
    """End a held request's task without calling anything (rejected, withdrawn)."""
    assert approval.task_id is not None
    task = await parts.tasks.get(approval.target, approval.owner, approval.task_id)
    if task is None:
        task = Task(id=approval.task_id, context_id=approval.context_id or "")
    text = f"request {verb}"
    if state == TaskState.TASK_STATE_REJECTED:
        text += f" by {approval.decided_by}"
    if approval.reason:
        text += f": {approval.reason}"
    task.status.Clear()
    task.status.state = state
    task.status.message.CopyFrom(status_message(task.id, task.context_id, text))
    task.status.message.metadata.update({APPROVAL_META: approval.id})
    await parts.tasks.record(approval.target, approval.owner, task)
    return task


class ApprovalDesk:
    """What an admin's decision sets in motion (the admin API calls this)."""

    def __init__(self, parts: Callable[[], FrontDoorParts], approvals: ApprovalParts) -> None:
        self._parts = parts
        self.parts = approvals
        self.approvals = approvals.approvals
        self._runner = approvals.runner
        # Told of every decision, after it is stored (a flow's checkpoint
        # wakes its run from here, `gateway.flows`).
        self.listeners: list[Callable[[Approval], Awaitable[None]]] = []

    async def decide(
        self,
        approval_id: str,
        approve: bool,
        by: str,
        reason: str | None,
        answer: dict[str, Any] | None = None,
    ) -> Approval:
        """Raises `ApprovalNotFound`, `AlreadyDecided`. ``answer`` (an agent's
        question put to a reviewer) is stored with the decision, where the
        waiting run reads it."""
        state: State = APPROVED if approve else REJECTED
        runs: list[RunSpec] = []

        consents = self._parts().consents

        async def store_run(approval: Approval, conn: AsyncConnection) -> None:
            # A wait for the user's consent ends with any decision, in its transaction.
            if consents is not None:
                await consents.forget(approval.id, conn)
            # The approved call's run in the decision's transaction: an outage
            # between the two would leave an approved task nothing runs.
            if approve and approval.kind == "a2a" and approval.task_id is not None:
                spec = _approved_run(approval, approval.task_id)
                await self._runner.stored(spec)(conn)
                runs.append(spec)

        result = {"answer": answer} if answer is not None else None
        approval = await self.approvals.decide(
            approval_id, state, by, reason, then=store_run, result=result
        )
        # Started before anything else is awaited: the run's row is written.
        for spec in runs:
            await self._runner.start(spec, None, new=False)
        await self.approvals.audit_decision(approval)
        if not approve and approval.kind == "a2a" and approval.task_id is not None:
            await end_task(self._parts(), approval, TaskState.TASK_STATE_REJECTED, "rejected")
        for listener in self.listeners:
            await listener(approval)
        return approval

    async def release(self, approval_id: str, reason: str) -> None:
        """A deferred call may go now (`gateway.delegation.deferrals`): made as
        an approved one, by the gateway."""
        await self._by_coordination(approval_id, True, reason)

    async def give_up(self, approval_id: str, reason: str) -> None:
        """A deferred call waited longer than its rank allows."""
        await self._by_coordination(approval_id, False, reason)

    async def waits_for_consent(self, approval_id: str) -> bool:
        consents = self._parts().consents
        return consents is not None and await consents.is_waiting(approval_id)

    async def connected(self, upstream: str, subject: str, issuer: str) -> int:
        """The user connected their account at an agent: their calls held for
        it go now (`gateway.agents.consents`), each once across replicas.
        Returns how many this replica released."""
        consents = self._parts().consents
        if consents is None:
            return 0
        released = 0
        for approval_id in await consents.waiting(upstream, subject, issuer):
            released += await self._released(approval_id, f"{subject} connected their account")
        return released

    async def _released(self, approval_id: str, reason: str) -> int:
        # Decided once across replicas: the first decision wins, and removes the wait.
        return int(await self._by_gateway(approval_id, True, RELEASED_BY, reason))

    async def sweep_consents(self) -> None:
        """Every few seconds, on every replica: a held call whose user is
        connected now goes (a connection made while the call was being held
        would otherwise be missed); one whose requester's token has expired
        is given up (it could never be made on their behalf); a wait whose
        call was decided otherwise is dropped."""
        consents = self._parts().consents
        if consents is None:
            return
        now = datetime.now(UTC)
        for due in await consents.due():
            if due.state != PENDING:
                await consents.drop(due.approval_id)
            elif due.connected:
                await self._released(due.approval_id, "the requester's account is connected")
            elif due.expires_at is not None and due.expires_at <= now:
                await self._by_gateway(
                    due.approval_id,
                    False,
                    RELEASED_BY,
                    "the requester's token expired before they connected their account; "
                    "send the request again",
                )

    async def _by_coordination(self, approval_id: str, go: bool, reason: str) -> None:
        await self._by_gateway(approval_id, go, DECIDED_BY, reason)

    async def _by_gateway(self, approval_id: str, go: bool, by: str, reason: str) -> bool:
        """A decision the gateway makes. Withdrawn by its requester, decided by
        an admin or by another replica meanwhile: theirs stands (False)."""
        with contextlib.suppress(AlreadyDecided, ApprovalNotFound):
            await self.decide(approval_id, go, by, reason)
            return True
        return False
