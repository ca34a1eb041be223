"""Reconciling A2A tasks the gateway lost contact with (`gateway.delegation.lost_tasks`).

Every `a2a_reconcile_poll_seconds` each replica takes the tasks that are due
(one replica per task per attempt) and asks their agent with `GetTask`, on
the owner's behalf: decided and minted anew, as for any call, and audited
(`a2a.reconcile`, then the `GetTask` itself). Then:

* the agent answers with an end (completed, failed, canceled, rejected): the
  record takes it and reconciling stops;
* it answers that the task waits for the caller (input or auth required):
  recorded, and reconciling stops (the caller goes on from there);
* it answers that the task still runs: recorded; the limit counts again from
  now, and the agent is asked again after the backoff;
* it does not know the task (it restarted and lost it): the task fails now,
  saying so;
* it cannot be reached, or the gateway may no longer ask on the owner's
  behalf (the owner's token expired, the policy changed): asked again after
  the backoff -- ``poll`` doubling per attempt, at most 12 polls -- until
  `a2a_reconcile_max_seconds` have passed since contact was lost; then the
  task fails, with the reason.

A failure recorded here is the gateway's verdict (`metadata.gatewayVerdict`);
if the agent later answers a `GetTask` with the task's real end, the record
takes the agent's word.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import GetTaskRequest, TaskState
from a2a.utils.errors import A2AError, TaskNotFoundError

from gateway.agents.admission import Admission, FrontDoorParts, handler_context
from gateway.agents.outages import DependencyUnavailableError
from gateway.agents.stream_records import RUNNING
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.call import Call
from gateway.delegation.lost_tasks import LostTask, backoff
from gateway.delegation.pipeline import DelegationDenied
from gateway.delegation.runs import TERMINAL
from policies.tokens import TokenInvalid
from registry.store import AgentNotFound

logger = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        parts: Callable[[], FrontDoorParts],
        handler: RequestHandler,
        *,
        poll_seconds: float,
        limit_seconds: float,
    ) -> None:
        self._parts = parts
        self._handler = handler
        self.poll_seconds = poll_seconds
        self._limit = limit_seconds

    async def tick(self) -> int:
        """One round over the tasks that are due; how many were asked about."""
        lost_tasks = self._parts().lost
        asked = 0
        for lost in await lost_tasks.due():
            next_at = datetime.now(UTC) + backoff(self.poll_seconds, lost.attempts + 1)
            if await lost_tasks.take(lost, next_at):
                asked += 1
                await self._reconcile(lost)
        return asked

    async def _reconcile(self, lost: LostTask) -> None:
        parts = self._parts()
        out_for = (datetime.now(UTC) - lost.since).total_seconds()
        since = lost.since.strftime("%Y-%m-%dT%H:%M:%SZ")
        call = Call(lost.caller, lost.agent_id, event="a2a.reconcile", trace_id=uuid.uuid4().hex)
        try:
            async with parts.delegate.open(call) as grant:
                context = handler_context(Admission(grant, lost.owner, frozenset()))
                task = await self._handler.on_get_task(GetTaskRequest(id=lost.task_id), context)
        except AgentNotFound:
            await self._fail(lost, f"agent {lost.agent_id} is no longer registered")
            return
        except (DelegationDenied, TokenInvalid) as exc:
            if out_for >= self._limit:
                await self._fail(
                    lost,
                    f"the gateway lost contact with agent {lost.agent_id} at {since} and "
                    f"could not ask it about this task for {self._limit:g} s on the owner's "
                    f"behalf ({exc})",
                )
            return
        except DependencyUnavailableError:
            raise  # not the agent's doing: the attempt comes again
        except TaskNotFoundError:
            await self._fail(
                lost,
                f"agent {lost.agent_id} no longer knows this task (the gateway lost "
                f"contact with it at {since})",
            )
            return
        except A2AError as exc:
            if out_for >= self._limit:
                await self._fail(
                    lost,
                    f"the gateway lost contact with agent {lost.agent_id} at {since}; it "
                    f"did not answer about this task for {self._limit:g} s ({exc})",
                )
            return
        state = task.status.state if task is not None else TaskState.TASK_STATE_UNSPECIFIED
        if state in RUNNING:
            await parts.lost.in_contact(lost)
        elif state not in TERMINAL:  # waits for the caller: nothing to follow
            await parts.lost.forget(lost)
        logger.info(
            "task %s of agent %s reconciled: %s",
            lost.task_id,
            lost.agent_id,
            TaskState.Name(state),
        )

    async def _fail(self, lost: LostTask, reason: str) -> None:
        parts = self._parts()
        if not await parts.lost.fail(lost, reason):
            return  # it ended meanwhile
        logger.warning("task %s of agent %s failed: %s", lost.task_id, lost.agent_id, reason)
        caller = lost.caller
        await parts.delegations.record_event(
            AuditEvent(
                event="a2a.reconcile",
                trace_id=uuid.uuid4().hex,
                subject=caller.subject,
                subject_issuer=caller.issuer,
                client_id=caller.client_id,
                actors=caller.actors,
                target=lost.agent_id,
                decision="allow",
                outcome="lost_contact",
                detail=f"task {lost.task_id} failed: {reason}"[:2000],
            )
        )
