"""Admitting one call on the A2A front door, whatever its binding.

The bindings differ in how a request arrives (a JSON-RPC body, an HTTP+JSON
path, a gRPC message with its `tenant`) and how a refusal is said (`Refusal`:
an HTTP status with the binding's error body, or a gRPC status). What is
decided does not differ: the skill a message is for, then the delegation --
admitted for the agent, held for a human, or refused -- and, for an id that
is no agent, the other targets served in the agents' id space (MCP servers).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from a2a.types import SendMessageRequest

from gateway.a2a.responses import denial_response
from gateway.agents.admission import Admission
from gateway.agents.consents import AgentConsents
from gateway.connections.connection import Connection
from gateway.connections.errors import ConnectionRequired
from gateway.delegation.call import Call, MessageSkill
from gateway.delegation.delegate import Delegate
from gateway.delegation.handoffs import (
    json_inputs,
    json_places,
    json_task_id,
    message_skill,
    proto_inputs,
    proto_places,
)
from gateway.delegation.permits import Deferral
from gateway.delegation.pipeline import (
    ApprovalRequired,
    Caller,
    CoordinationDeferred,
    DelegationDenied,
    Delegations,
    Grant,
)
from gateway.delegation.tasks import Owner, TaskRecords
from policies.tokens import TokenInvalid
from registry.store import AgentNotFound

Route = Literal["agent", "other", "approval"]


class Refusal(Exception):
    """A call refused before any agent saw it, said in no binding yet: the
    status as HTTP names it (the gRPC door maps it to a status code), the
    message, structured data, and headers (`Retry-After`)."""

    def __init__(
        self,
        status: int,
        message: str,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.headers = headers or {}


def refusal(
    status: int, message: str, data: Any = None, headers: dict[str, str] | None = None
) -> Refusal:
    """A `responses.Refuse` that builds the refusal instead of answering it."""
    return Refusal(status, message, data, headers)


class OtherTargets(Protocol):
    async def admission(self, agent_id: str, caller: Caller, trace_id: str) -> Any | None: ...


@dataclass(frozen=True)
class Admitted:
    """Where the call goes and what its handler reads from the call context."""

    route: Route
    admission: Any  # an `Admission`, or what `others` admitted


async def decide_skill(
    delegations: Delegations,
    tasks: TaskRecords,
    agent_id: str,
    owner: Owner,
    params: Mapping[str, Any] | SendMessageRequest,
) -> tuple[MessageSkill, list[Any] | None]:
    """What a SendMessage is for (`message_skill`: every place it can name a
    skill, or the task it continues) and what it hands the agent (for the
    coordination rules). ``params``: its JSON params, read as widely as any
    parser reads them (`json_places`), or -- the gRPC door -- the parsed
    request, which is what goes upstream (`proto_places`). Raises the SDK's
    `InvalidParamsError` for places that disagree; a target that is no agent
    has no skills to decide."""
    try:
        _, card, _ = await delegations.target(agent_id)
    except AgentNotFound:
        return MessageSkill(None), None
    if isinstance(params, SendMessageRequest):
        message = params.message
        places, task_id = proto_places(params), message.task_id or None
        decided = await message_skill(tasks, agent_id, card, owner, places, task_id)
        return decided, proto_inputs(message)
    decided = await message_skill(
        tasks, agent_id, card, owner, json_places(params), json_task_id(params)
    )
    return decided, json_inputs(params)


async def admit_call(
    delegate: Delegate,
    held: AsyncExitStack,
    caller: Caller,
    agent_id: str,
    trace_id: str,
    owner: Owner,
    *,
    message: bool,
    decided: MessageSkill,
    inputs: list[Any] | None,
    extensions: frozenset[str],
    others: OtherTargets | None,
    approvals: bool,
    consents: AgentConsents | None = None,
) -> Admitted:
    """Decide one call, held open in ``held`` while the door makes it
    (`Delegate.open`: it ends with one record wherever it is written); raises
    `Refusal`. A call held for a human goes to the approvals handler when
    there is one (``approvals``), else it is refused."""
    delegations = delegate.delegations
    deferral = None
    route: Route = "agent"
    call = Call(caller, agent_id, event="a2a", trace_id=trace_id)
    if message:
        call = decided.call(caller, agent_id, event="a2a", trace_id=trace_id, inputs=inputs)
    try:
        grant = await held.enter_async_context(delegate.open(call))
    except AgentNotFound:
        return await _another_target(delegations, others, caller, agent_id, trace_id)
    except ApprovalRequired as pending:
        grant, deferral = _held(pending, approvals)
        route = "approval"
    except DelegationDenied as denied:  # the policy, a rate limit, a coordination rule
        raise denial_response(denied, refusal) from None
    except TokenInvalid as exc:  # the token's end (`usable_until`) came since the door
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        raise Refusal(401, str(exc), headers=challenge) from None
    consent, connection, holds = None, None, False
    if message and route == "agent" and consents is not None:
        consent, connection = await _users_own(consents, grant, approvals)
        route = "approval" if consent is not None else route
        # Whichever agent takes the message in the end (a fallback, say): one
        # that wants the user's own account holds it for their consent.
        holds = approvals
    admission = Admission(
        grant,
        owner,
        extensions,
        decided.skill,
        task_id=decided.task_id,
        strictest=decided.strictest,
        deferral=deferral,
        consent=consent,
        connection=connection,
        holds_for_consent=holds,
        inputs=inputs,
    )
    return Admitted(route, admission)


def _held(pending: ApprovalRequired, approvals: bool) -> tuple[Grant, Deferral | None]:
    """A call held for a human (or deferred by a coordination rule): its grant
    and deferral, for the approvals handler; refused where there is none."""
    if not approvals or not isinstance(pending.permit, Grant):
        reasons = list(pending.decision.reasons)
        raise Refusal(
            403,
            "delegation needs human approval: " + "; ".join(reasons),
            {"reasons": reasons, "approval_required": True},
        ) from None
    deferral = pending.deferral if isinstance(pending, CoordinationDeferred) else None
    return pending.permit, deferral


async def _another_target(
    delegations: Delegations,
    others: OtherTargets | None,
    caller: Caller,
    agent_id: str,
    trace_id: str,
) -> Admitted:
    """No agent by that id: another kind of target served as one (an MCP
    server, `others`), else refused and recorded."""
    other = None
    if others is not None:
        other = await others.admission(agent_id, caller, trace_id)
    if other is None:
        await delegations.refused(
            caller,
            agent_id,
            event="a2a",
            trace_id=trace_id,
            reason=f"no agent {agent_id}",
            outcome="unknown_agent",
        )
        raise Refusal(404, f"no agent {agent_id}") from None
    return Admitted("other", other)


async def _users_own(
    consents: AgentConsents, grant: Grant, approvals: bool
) -> tuple[ConnectionRequired | None, Connection | None]:
    """For an agent that takes its users' own tokens: the connection the
    call goes with, or the consent it waits for (refused where nothing can
    hold it)."""
    found = await consents.needed(grant)
    consent = None
    if isinstance(found, ConnectionRequired):
        # The agent takes only its users' own tokens, and this user has not
        # connected theirs: the message waits for them (`gateway.agents.consents`).
        if not approvals:
            raise Refusal(403, str(found), {"connect_url": found.connect_url})
        consent = found
    return consent, found if isinstance(found, Connection) else None
