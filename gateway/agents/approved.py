"""Making an A2A call an admin approved (`gateway.delegation.approvals`).

`gateway.agents.approvals` holds the request and answers its task while it
waits; once approved (`ApprovalDesk.decide`), the call is a gateway-run task
(`gateway.delegation.task_runner`), and `ApprovalExecution` runs it: decided
again and minted at that moment, for the original caller, then sent through
the front door's own handler for the agent, whose status and artifacts
become the gateway task's (`_Mirror`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
)
from a2a.types import (
    GetTaskRequest,
    SendMessageRequest,
    Task,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    A2AError,
    InvalidParamsError,
)
from google.protobuf.json_format import ParseDict, ParseError

from gateway.agents.admission import Admission, FrontDoorParts, handler_context
from gateway.agents.mirror import UPSTREAM_META, Mirror, upstream_task_of
from gateway.connections.errors import UserCredentialUnavailable
from gateway.delegation.approval_store import Approvals
from gateway.delegation.approvals import APPROVED, Approval
from gateway.delegation.call import MessageSkill
from gateway.delegation.coordination import claiming
from gateway.delegation.handoffs import message_skill, proto_inputs, proto_places
from gateway.delegation.pipeline import CoordinationDeferred, DelegationDenied, Grant
from gateway.delegation.runs import Execute, RunSpec, status_message
from policies.tokens import TokenInvalid
from registry.store import AgentNotFound

POLL_SECONDS = 0.5


class ApprovalExecution:
    """Runs an approved A2A call as the gateway task the caller holds."""

    def __init__(
        self,
        parts: Callable[[], FrontDoorParts],
        approvals: Approvals,
        handler_for: Callable[[Mapping[str, Any]], RequestHandler],
        sending: Callable[[RunSpec, Grant, str], Awaitable[None]] | None = None,
    ) -> None:
        self._parts = parts
        self._approvals = approvals
        self._handler_for = handler_for
        # Keeps what is about to be sent in the run's row (`TaskRunner.sending`).
        self._sending = sending

    def dispatching(self, otherwise: Execute) -> Execute:
        """One `Execute` for the runner: approved calls here, the rest ``otherwise``."""

        async def execute(spec: RunSpec, grant: Grant | None) -> AsyncGenerator[Event]:
            approval = await self._approvals.by_task(spec.agent_id, spec.task_id)
            chosen = otherwise if approval is None else self
            async with contextlib.aclosing(chosen(spec, grant)) as events:
                async for event in events:
                    yield event

        return execute

    async def __call__(self, spec: RunSpec, grant: Grant | None) -> AsyncGenerator[Event]:
        parts = self._parts()
        approval = await self._approvals.by_task(spec.agent_id, spec.task_id)
        task = await parts.tasks.get(spec.agent_id, spec.owner, spec.task_id)
        task = task or Task(id=spec.task_id, context_id=spec.context_id)
        follow = upstream_task_of(task)
        if approval is None or not (follow or await self._approvals.claim(approval.id)):
            # Claimed before: the replica making it was interrupted before the
            # agent named its task. An approval covers one call, so it is not
            # made a second time.
            yield _failed(task, "the approved call was interrupted; it is not made twice")
            return
        mirror = Mirror(task)
        try:
            working = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
            working.status.state = TaskState.TASK_STATE_WORKING
            working.status.message.CopyFrom(
                status_message(
                    task.id, task.context_id, f"approved by {approval.decided_by}; calling"
                )
            )
            yield working
            async with contextlib.aclosing(self._call(approval, mirror, spec, follow)) as events:
                async for event in events:
                    yield event
        except Exception:
            await self._approvals.finish(approval.id, "failed")
            raise
        final = mirror.final()
        yield final
        await self._approvals.finish(approval.id, TaskState.Name(final.status.state))

    async def resumable(self, spec: RunSpec) -> bool:
        """Whether an interrupted run can go on without calling again: an
        approved call whose upstream task is known is followed there."""
        approval = await self._approvals.by_task(spec.agent_id, spec.task_id)
        if approval is None or approval.state != APPROVED:
            return False
        task = await self._parts().tasks.get(spec.agent_id, spec.owner, spec.task_id)
        return task is not None and upstream_task_of(task) is not None

    async def _call(
        self, approval: Approval, mirror: Mirror, spec: RunSpec, follow: str | None
    ) -> AsyncGenerator[Event]:
        """Make the approved call, or -- taken over after an interruption --
        follow the upstream task it started (``follow``) to its end."""
        # A failure the handler did not record is recorded as the call's end
        # as it leaves the held call, then said on the task.
        try:
            async with contextlib.AsyncExitStack() as held:  # the call, held open
                admitted = await self._admitted(approval, mirror, held)
                if admitted is None:
                    return
                request, decided, grant = admitted
                request.configuration.return_immediately = False
                handler = self._handler_for(grant.card)
                admission = Admission(
                    grant,
                    approval.owner,
                    frozenset(),
                    decided.skill,
                    task_id=decided.task_id,
                    strictest=decided.strictest,
                )
                context = handler_context(admission)
                if follow is not None:
                    mirror.upstream_id = follow
                else:
                    if self._sending is not None:
                        await self._sending(spec, grant, "a2a.approved")
                    sent = self._sent(handler, request, context, mirror, spec)
                    async with contextlib.aclosing(sent):
                        async for update in sent:
                            yield update
                polled = self._polled(handler, context, mirror, approval, grant)
                async with contextlib.aclosing(polled):
                    async for update in polled:
                        yield update
        except A2AError as exc:
            mirror.fail(str(exc) or type(exc).__name__)
        except UserCredentialUnavailable as missing:
            # The user's own account at the agent, gone or short of a scope
            # since the call was released (nothing was sent): said with the link.
            mirror.fail(f"{missing}; then send the request again")

    async def _admitted(
        self, approval: Approval, mirror: Mirror, held: contextlib.AsyncExitStack
    ) -> tuple[SendMessageRequest, MessageSkill, Grant] | None:
        """The stored request, decided again now and held open in ``held``
        (`Delegate.open`: the call ends with one record); None: it may not
        be made (said on ``mirror``)."""
        parts = self._parts()
        request = SendMessageRequest()
        try:
            ParseDict(approval.request, request, ignore_unknown_fields=True)
            # Held naming one skill (or none) and no other: decided again now
            # for that one (or as for the strictest; continuing a task, for
            # the task's): a policy change counts.
            _, card, _ = await parts.delegations.target(approval.target)
            decided = await message_skill(
                parts.tasks,
                approval.target,
                card,
                approval.owner,
                proto_places(request),
                request.message.task_id,
            )
            with claiming(approval.id):  # the leases reserved for it, if released
                call = decided.call(
                    approval.caller(),
                    approval.target,
                    event="a2a.approved",
                    trace_id=approval.trace_id,
                    approved=True,
                    inputs=proto_inputs(request.message),
                )
                grant = await held.enter_async_context(parts.delegate.open(call))
        except AgentNotFound:
            mirror.fail(f"agent {approval.target} is no longer registered")
            return None
        except CoordinationDeferred as deferred:
            # Held back again between its release and now (a hold reopened):
            # an approval covers one attempt, so it is not kept a second time.
            reasons = "; ".join(deferred.decision.reasons)
            mirror.fail(f"held back again when it was to be made: {reasons}; send it again")
            return None
        except DelegationDenied as denied:
            reasons = "; ".join(denied.decision.reasons)
            mirror.fail(f"the policy no longer allows this call: {reasons}")
            return None
        except TokenInvalid:
            # A minted token never outlives the one it derives from.
            mirror.fail(
                "the requester's token expired before the approval, so the call cannot be "
                "made on their behalf; send the request again"
            )
            await self._approvals.audit(approval, "a2a.approved", "expired", "token expired")
            return None
        except (ParseError, InvalidParamsError) as exc:
            mirror.fail(f"the stored request cannot be made: {exc}")
            return None
        return request, decided, grant

    async def _sent(
        self,
        handler: RequestHandler,
        request: SendMessageRequest,
        context: ServerCallContext,
        mirror: Mirror,
        spec: RunSpec,
    ) -> AsyncGenerator[Event]:
        """The call made: the agent's events, as the gateway task's updates."""
        kept = False
        # Closed before the call is: the stream's record is written as it closes.
        events = handler.on_message_send_stream(request, context)
        async with contextlib.aclosing(events):
            async for event in events:
                update = mirror.take(event)
                if mirror.upstream_id and not kept:
                    # Kept at once, so a replica taking over can follow it.
                    # (Not "unless the snapshot names it": `take` names it
                    # in memory as soon as a Task event arrives.)
                    mirror.task.metadata.update({UPSTREAM_META: mirror.upstream_id})
                    kept = await self._parts().tasks.record(spec.agent_id, spec.owner, mirror.task)
                if update is not None:
                    yield update

    async def _polled(
        self,
        handler: RequestHandler,
        context: ServerCallContext,
        mirror: Mirror,
        approval: Approval,
        grant: Grant,
    ) -> AsyncGenerator[Event]:
        """A non-streaming agent may answer a task still at work: poll it."""
        loop = asyncio.get_running_loop()
        timeout = grant.agent.timeout_seconds or self._parts().default_timeout_seconds
        deadline = loop.time() + timeout
        while mirror.upstream_id and not mirror.ended:
            if loop.time() > deadline:
                mirror.fail(f"agent {approval.target} did not finish in time")
                return
            await asyncio.sleep(POLL_SECONDS)
            latest = await handler.on_get_task(GetTaskRequest(id=mirror.upstream_id), context)
            update = mirror.take(latest)
            if update is not None:
                yield update


def _failed(task: Task, reason: str) -> Task:
    task.status.Clear()
    task.status.state = TaskState.TASK_STATE_FAILED
    task.status.message.CopyFrom(status_message(task.id, task.context_id, reason))
    return task
