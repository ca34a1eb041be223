"""What a running flow works with, and the run's state as others see it.

`FlowRuntime` holds the gateway's parts a step needs (the pipeline, the A2A
handlers, the MCP federation, the approvals, the stores). A run's A2A task
(the flow's agent, task id = run id) is kept in step with the run here
(`publish`), so `GetTask` answers from the task records like any other
gateway-owned task.

The durable grant (`GrantView`): who the run acts for (subject, issuer, the
client their request came through), the actor chain every step's token
carries (the caller's chain, then the flow), the most scopes a step may get
(what the policy granted the flow when the run started), and a hard end
(`expires_at`). It holds no token. Each step turns it into a `Caller` and
goes through `Delegations.admit` with the policy in force at that moment;
a revoked or expired grant fails the run at its next step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from a2a.types import Artifact, Part, Task, TaskState
from google.protobuf.struct_pb2 import Struct, Value
from pydantic import SecretStr

from gateway.agents.admission import FrontDoorParts
from gateway.agents.exchange import OperationsHandler
from gateway.delegation.approval_store import Approvals
from gateway.delegation.call import Call
from gateway.delegation.delegate import Delegate
from gateway.delegation.permits import Grant
from gateway.delegation.pipeline import Caller, Delegations
from gateway.delegation.runs import status_message
from gateway.delegation.tasks import Owner, TaskRecords
from gateway.federation.federation import McpFederation
from gateway.flows.cards import SKILL
from gateway.flows.definition import CallStep
from gateway.flows.run_views import grant_view
from gateway.flows.store import FlowStore
from gateway.http.json_body import MAX_DEPTH
from gateway.storage.statements import Sql
from policies.rules import handoff

RUN_STATES = {
    "submitted": TaskState.TASK_STATE_SUBMITTED,
    "working": TaskState.TASK_STATE_WORKING,
    "input_required": TaskState.TASK_STATE_INPUT_REQUIRED,
    "auth_required": TaskState.TASK_STATE_AUTH_REQUIRED,
    "completed": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "canceled": TaskState.TASK_STATE_CANCELED,
    "rejected": TaskState.TASK_STATE_REJECTED,
}


class GrantUnusable(Exception):
    """The run's grant was revoked or has expired: no further step runs."""


@dataclass(frozen=True)
class FlowSettings:
    grant_max_seconds: float
    checkpoint_poll_seconds: float = 60.0
    consent_timeout_seconds: float = 86400.0
    poll_min_seconds: float = 0.05
    poll_max_seconds: float = 2.0
    # The gateway's named secrets: a webhook trigger's HMAC key is one of them.
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)
    retry_backoff_seconds: float = 0.2
    retry_backoff_max_seconds: float = 5.0
    # A body a flow reads itself (a webhook's) is held to the doors' depth.
    max_json_depth: int = MAX_DEPTH

    def backoff(self, attempt: int) -> float:
        """The wait after attempt ``attempt`` (0 first) failed: doubling, capped."""
        return min(self.retry_backoff_seconds * 2.0**attempt, self.retry_backoff_max_seconds)


@dataclass
class FlowRuntime:
    store: FlowStore
    tasks: TaskRecords
    approvals: Approvals
    settings: FlowSettings
    front_door: Callable[[], FrontDoorParts]
    # The agent with this (stored) card: its A2A door, and its plain
    # operations, which a step's call uses (`gateway.agents.exchange`).
    handler_for: Callable[[Mapping[str, Any]], OperationsHandler]
    federation: Callable[[], McpFederation]
    # Told of each call step that ended: its state and seconds (metrics).
    step_listeners: list[Callable[[str, float], None]] = field(default_factory=list)

    @property
    def delegations(self) -> Delegations:
        return self.front_door().delegations

    @property
    def delegate(self) -> Delegate:
        """The core: a run's start is recorded through it (`adapters.core_check`)."""
        return self.front_door().delegate

    async def caller(self, grant_id: str) -> Caller:
        """The caller every step of the run acts as; `GrantUnusable` if it may not."""
        return caller_of(await self.store.grant(grant_id))

    @asynccontextmanager
    async def look_at(
        self, run: Mapping[str, Any], agent: str, event: str, *, sends: bool = True
    ) -> AsyncIterator[tuple[Caller, Grant]]:
        """A run's look at an agent's task (a wait reading it, a follower's
        watch), held open while the block makes it: decided as a call to the
        agent is -- on the run's grant now (`GrantUnusable` when revoked or
        expired), by the policy in force, audited -- and ended by one record
        (`Delegate.open`); the caller and the grant (``sends``: whether it is
        used for a call at all). Raises what `Delegations.admit` raises."""
        caller = await self.caller(run["grant_id"])
        call = Call(caller, agent, event=event, trace_id=run["trace_id"], sends=sends)
        async with self.delegate.open(call) as grant:
            yield caller, grant

    async def publish(
        self,
        run: Mapping[str, Any],
        state: str,
        text: str,
        output: Any = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        caller: Caller | None = None,
        created: Callable[[Sql], None] | None = None,
    ) -> None:
        """Set the run's state, and its A2A task's, with a status message.

        ``caller``: who made the call that started the run, given with its
        first record and kept with the task from then on (never a token), so
        the run's end starts the flows triggered by it for that caller, as any
        agent's task does (`gateway.flows.triggers`). ``created``: the run's
        creation (`FlowStore.creation`, the run stored in ``state`` already),
        written instead of a change of its state."""
        values: dict[str, Any] = {"state": state}
        if state == "completed":
            values["output"] = output
        if state in ("failed", "rejected", "canceled"):
            values["error"] = text
        task = Task(id=run["id"], context_id=run["context_id"])
        task.status.state = RUN_STATES[state]
        task.status.message.CopyFrom(status_message(run["id"], run["context_id"], text))
        if metadata:
            task.metadata.update(dict(metadata))
        task.metadata.update({"flow": run["flow_id"], "run": run["id"]})
        if state == "completed":
            task.artifacts.append(result_artifact(output))
        owner = Owner(run["owner_subject"], run["owner_issuer"], caller)
        # The run's record and its task's, in one transaction.
        write = created or self.store.run_write(run["id"], **values)
        await self.tasks.record(run["flow_id"], owner, task, skill=SKILL, first=write)


def caller_of(row: Mapping[str, Any]) -> Caller:
    """The caller a run's grant (its stored row, read just now) makes every
    step act as; `GrantUnusable` once it is revoked or past its end."""
    grant = grant_view(dict(row))
    if grant.revoked_at is not None:
        reason = f": {grant.revoke_reason}" if grant.revoke_reason else ""
        raise GrantUnusable(f"the run's grant was revoked by {grant.revoked_by}{reason}")
    if grant.expires_at <= datetime.now(UTC):
        raise GrantUnusable(f"the run's grant expired at {grant.expires_at.isoformat()}")
    return Caller(
        subject=grant.subject,
        issuer=grant.issuer,
        scopes=frozenset(grant.scopes),
        actors=tuple(grant.actors),
        client_id=grant.actors[-1],
        not_after=grant.expires_at.timestamp(),
    )


def result_artifact(output: Any) -> Artifact:
    """The run's result as one artifact: a data part (an object, or the value
    under ``result``), or a text part for a string."""
    if isinstance(output, str):
        part = Part(text=output)
    else:
        struct = Struct()
        struct.update(output if isinstance(output, dict) else {"result": output})
        part = Part(data=Value(struct_value=struct), media_type="application/json")
    return Artifact(artifact_id="result", name="result", parts=[part])


def is_idempotent(rt: FlowRuntime, step: CallStep) -> bool:
    """The policy's ``idempotent`` for the step's target (for an MCP tool, else
    the tool's own ``idempotentHint``, part of the definition an admin approved)."""
    policy = rt.delegations.policy.current
    target = step.call
    if target.agent is not None:
        return bool(handoff(policy, target.agent, "skill", target.skill).idempotent)
    federation = rt.federation()
    known = federation.known_tool(str(target.tool))
    return known is not None and federation.idempotent(known)
