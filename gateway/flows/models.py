"""What the flows API shows: flows, their versions, runs, steps and grants."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.delegation.approvals import GivenAnswer
from gateway.flows.document_basics import STEP_ID


class TokenUsage(BaseModel):
    """Tokens, as the upstreams reported them (OpenAI-compatible ``usage``),
    and what the calls cost at the policy's prices when they were made."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal | None = Field(
        None, description="at the policy's prices (`prices`) when the steps ended"
    )
    currency: str | None = None


class FlowRecord(BaseModel):
    id: str
    version: int = Field(description="the registry's number for this version: 1, 2, ...")
    name: str
    description: str | None = None
    digest: str = Field(description="sha256 of the canonical JSON document")
    created_by: str
    created_at: datetime
    updated_at: datetime
    document: dict[str, Any]


class FlowVersion(BaseModel):
    version: int
    digest: str
    created_by: str
    created_at: datetime
    document: dict[str, Any]


class Registered(BaseModel):
    flow: FlowRecord
    changed: bool = Field(description="false: the same document was registered already")


class GrantView(BaseModel):
    """A run's durable grant: what it may do for its user, and until when. Never a token."""

    id: str
    subject: str
    issuer: str
    client_id: str
    actors: list[str] = Field(description="the actor chain every step's token carries")
    scopes: list[str] = Field(description="the most any step's token may carry")
    issued_at: datetime
    expires_at: datetime = Field(description="no step starts after this")
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None


class StepView(BaseModel):
    id: str
    parent: str | None = Field(None, description="the parallel step a branch belongs to")
    kind: str
    state: str = Field(
        description="pending, running, retrying (waiting out the backoff before its next "
        "attempt), waiting, input_required (its agent asked the run's user: the question "
        "is its output), completed, failed, skipped, not_needed, canceled"
    )
    target: str | None = None
    action: str | None = None
    attempts: int
    retries: int
    input: Any = None
    output: Any = None
    error: str | None = None
    upstream_task_id: str | None = None
    token: dict[str, Any] | None = Field(
        None, description="the step's minted token: actors, scopes, audience, jti, expiry"
    )
    approval_id: str | None = None
    trace_id: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    usage: TokenUsage | None = Field(None, description="what the upstream said the call cost")
    reused_from: str | None = Field(
        None, description="a fork's step before its start: the run whose output it reuses"
    )


class RunView(BaseModel):
    id: str
    flow_id: str
    flow_version: int
    state: str = Field(
        description="submitted, working, input_required, completed, failed, canceled, rejected"
    )
    user: dict[str, str]
    input: Any
    output: Any = None
    error: str | None = None
    trace_id: str
    context_id: str
    current_step: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    grant: GrantView | None = None
    steps: list[StepView] = Field(default_factory=list)
    usage: TokenUsage | None = Field(None, description="the steps' usage, summed")
    forked_from: str | None = Field(None, description="the run this one was forked from")
    fork_step: str | None = Field(None, description="the step of that run this one started at")


class StartRun(BaseModel):
    """`POST /flows/{id}/runs`."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict)


class ForkRun(BaseModel):
    """`POST /flows/{id}/runs/{run}/fork`: a new run from ``step`` of an ended
    run, the steps before it reused (`gateway.flows.forks`)."""

    model_config = ConfigDict(extra="forbid")

    step: str = Field(pattern=STEP_ID, description="a step of the flow's top level")
    input: dict[str, Any] | None = Field(
        None, description="the fork's input (the run's own if left out), for the step on"
    )
    version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="the flow version to go on with (the flow's current one if left out; "
        "the run's own or a newer one; new input runs the current one)",
    )


class AnswerRun(GivenAnswer):
    """`POST /flows/{id}/runs/{run}/answer`: the run's user's answer to the
    question its step's agent asked, as text, data or both (the same answer
    a reviewer gives on the desk), and which question it answers."""

    round: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="the question answered (the step's output.round): a retried or doubled "
        "answer to a question already answered is refused (409), not taken for the next",
    )
    step: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="the step whose question it answers (the run's current_step): with "
        "branches or items asking in turn, each from round 1, an answer meant for one is "
        "refused (409) once the next asks",
    )


class Answered(BaseModel):
    run: str
    step: str
    status: Literal["delivered"] = "delivered"


class Revoke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)


class UserUsage(TokenUsage):
    subject: str
    issuer: str
    runs: int = Field(description="runs with usage reported")


class FlowUsage(TokenUsage):
    """`GET /flows/{id}/usage`: what the flow's kept runs cost, in all and per user."""

    flow_id: str
    runs: int = Field(description="runs with usage reported")
    by_user: list[UserUsage] = Field(default_factory=list)


class UsageReport(TokenUsage):
    """`GET /usage`: what runs used and cost, per flow and per user (one's
    own; admins: everyone's)."""

    since: datetime | None = None
    runs: int = Field(description="runs with usage reported")
    by_flow: list[FlowUsage] = Field(default_factory=list)
    by_user: list[UserUsage] = Field(default_factory=list)
