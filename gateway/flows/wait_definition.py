"""What a flow's wait step waits for: an event posted to the run, or another
agent's task reaching a state (`gateway.flows.definition`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.flows.document_basics import EVENT_NAME, Expression, Strict

# A2A 1.0 `TaskState` names (specification/a2a.proto), as `TASK_STATE_` + upper case.
TaskStateName = Literal[
    "submitted",
    "working",
    "input_required",
    "auth_required",
    "completed",
    "failed",
    "canceled",
    "rejected",
]
TASK_ENDS: tuple[TaskStateName, ...] = ("completed", "failed", "canceled", "rejected")


class WaitTask(Strict):
    """A task of another agent, delegated through the gateway and owned by the
    run's user (`gateway.flows.task_waits`)."""

    agent: str = Field(min_length=1, max_length=128, description="the agent whose task it is")
    id: Expression = Field(description="an expression giving the task's id")


class Wait(Strict):
    """Exactly one of ``event`` (posted to the run) or ``task`` (another
    agent's task reaching one of ``states``)."""

    event: str | None = Field(
        None,
        pattern=EVENT_NAME,
        description="its name: POST /flows/{id}/runs/{run}/events/{event} delivers it",
    )
    key: Expression | None = Field(
        None,
        description="with event: the run's key for it (e.g. input.order_id), by which a "
        "webhook trigger's deliver finds the runs waiting for the event",
    )
    task: WaitTask | None = Field(None, description="another agent's task, owned by the run's user")
    states: list[TaskStateName] | None = Field(
        None,
        min_length=1,
        max_length=8,
        description="with task: the states waited for (default: any end -- completed, "
        "failed, canceled, rejected)",
    )
    timeout_seconds: float = Field(86400, gt=0, le=30 * 86400)
    on_timeout: Literal["fail", "continue"] = Field(
        "fail", description="fail the run, or go on with a null output"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Wait:
        if (self.event is None) == (self.task is None):
            raise ValueError("a wait has exactly one of event or task")
        if self.states is not None and self.task is None:
            raise ValueError("states go with task, not with event")
        if self.key is not None and self.event is None:
            raise ValueError("key goes with event, not with task")
        return self

    @property
    def task_states(self) -> tuple[TaskStateName, ...]:
        return tuple(self.states) if self.states is not None else TASK_ENDS
