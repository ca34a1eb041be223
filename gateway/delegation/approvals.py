"""Human approval: calls the policy holds until an admin decides.

A call to a skill or tool marked ``approval: true`` is not made when it is
asked for. It becomes an approval (a row in `approvals`): who asked (user,
client, actor chain, scopes -- never a token), the target and skill or tool,
the request itself, the policy's reasons, the trace id. An admin approves or
rejects it once (`decide`: the first decision wins, a second is a conflict);
the requester may withdraw it while it is pending.

What happens next depends on the front door it came through:

* A2A (`gateway.agents.approvals`): the caller holds a gateway-owned task in
  ``TASK_STATE_AUTH_REQUIRED``; approval starts the call as a gateway-run task
  (`gateway.delegation.task_runner`), decided and minted again at that moment;
* MCP (`gateway.mcp.approvals`): the client is told the approval id and asks
  again for the outcome; the approved call is made then, once;
* a flow's checkpoint (`gateway.flows`, kind ``flow``): no call is held; the
  run waits for the decision (`hold` writes it, with the run as its task).

Every step is audited with the request's trace id: the request (outcome
``approval_required``, with `decided_on`), the decision (``approval``), the call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.delegation.pipeline import Caller, Permit
from gateway.delegation.tasks import Owner

State = Literal["pending", "approved", "rejected", "withdrawn"]
PENDING: State = "pending"
APPROVED: State = "approved"
REJECTED: State = "rejected"
WITHDRAWN: State = "withdrawn"
AUDIT_EVENT = "approval"


class ApprovalNotFound(Exception):
    pass


class AlreadyDecided(Exception):
    def __init__(self, approval: Approval) -> None:
        super().__init__(f"approval {approval.id} is already {approval.state}")
        self.approval = approval


class Requester(BaseModel):
    subject: str
    issuer: str
    client_id: str
    actors: list[str] = Field(description="oldest first: the user's client, then agents")
    scopes: list[str]
    token_expires_at: datetime | None = Field(
        None, description="when the requester's token expires: an A2A call approved later fails"
    )
    txn: str | None = Field(
        None,
        description="the work the call belongs to, carried in its token: '<run>:<step>' for a "
        "call an agent made onwards for a flow run's step",
    )


class Approval(BaseModel):
    """One held call, as the admin API shows it."""

    id: str
    state: State
    kind: Literal["a2a", "mcp", "flow"]
    target: str = Field(description="the agent or MCP server (a flow: the flow)")
    action_kind: Literal["skill", "tool"]
    action: str | None = Field(None, description="the skill or tool (None: the whole agent)")
    tool: str | None = Field(None, description="the MCP tool name the client called")
    requested_by: Requester
    request: dict[str, Any] = Field(description="the A2A message, or the MCP tool arguments")
    reasons: list[str] = Field(description="the policy's reasons")
    trace_id: str
    task_id: str | None = None
    context_id: str | None = None
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = Field(None, description="the admin's (or requester's) reason")
    outcome: str | None = Field(None, description="what the approved call did")
    finished_at: datetime | None = None
    answer: dict[str, Any] | None = Field(
        None, description="an agent's question (`asks`): the reviewer's answer, once approved"
    )

    @property
    def owner(self) -> Owner:
        return Owner(self.requested_by.subject, self.requested_by.issuer)

    @property
    def asks(self) -> bool:
        """A flow's agent's question put to a reviewer (`gateway.flows.answerers`):
        approved with the answer, which goes to the agent."""
        return self.kind == "flow" and isinstance(self.request.get("question"), dict)

    def caller(self) -> Caller:
        who = self.requested_by
        expires = who.token_expires_at
        return Caller(
            subject=who.subject,
            issuer=who.issuer,
            scopes=frozenset(who.scopes),
            actors=tuple(who.actors),
            client_id=who.client_id,
            not_after=expires.timestamp() if expires is not None else None,
            txn=who.txn,
        )


class ApprovalPage(BaseModel):
    items: list[Approval]
    next_offset: int | None = None


class GivenAnswer(BaseModel):
    """An answer to an agent's question -- a reviewer's on the desk, or the
    run's user's (`gateway.flows.models.AnswerRun`): text, data or both."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, max_length=16000)
    data: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _says_something(self) -> GivenAnswer:
        if not (self.text or "").strip() and not self.data:
            raise ValueError("an answer has text or data")
        return self


class Decision(BaseModel):
    """`POST /approvals/{id}`. Unknown keys are refused: a misspelt key
    ("decison", "reasn") must not pass as a decision without it."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason: str | None = Field(None, max_length=2000)
    answer: GivenAnswer | None = Field(
        None,
        description="an agent's question (`asks`): the answer it is sent; required to "
        "approve one, refused for anything else",
    )


@dataclass(frozen=True)
class NewApproval:
    kind: Literal["a2a", "mcp"]
    permit: Permit
    action_kind: Literal["skill", "tool"]
    request: dict[str, Any]
    action: str | None = None  # when the permit names none (an A2A message's skill)
    tool: str | None = None
    task_id: str | None = None
    context_id: str | None = None


def new_id() -> str:
    return "apr_" + uuid.uuid4().hex
