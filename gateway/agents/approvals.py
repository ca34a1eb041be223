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

The A2A operations are `gateway.agents.approval_handler`'s; this module holds
what an admin's decision sets in motion (`ApprovalDesk`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from a2a.types import Task, TaskState
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import Turn
from gateway.agents.admission import FrontDoorParts
from gateway.agents.consents import RELEASED_BY
from gateway.delegation.approval_store import Approvals
from gateway.delegation.approvals import (
    APPROVED,
    PENDING,
    REJECTED,
    AlreadyDecided,
    Approval,
    ApprovalNotFound,
    State,
)
from gateway.delegation.deferrals import DECIDED_BY, Deferrals
from gateway.delegation.runs import RunSpec, status_message
from gateway.delegation.task_runner import TaskRunner

APPROVAL_META = "approval"


@dataclass(frozen=True)
class ApprovalParts:
    approvals: Approvals
    runner: TaskRunner
    deferrals: Deferrals | None = None  # calls a coordination rule defers


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
