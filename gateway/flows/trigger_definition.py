"""A flow document's triggers: what starts a run without anyone asking -- a
delegated task's end, a signed webhook, a schedule (`gateway.flows.triggers`,
`gateway.flows.webhooks`, `gateway.flows.schedules`)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, model_validator

from gateway.flows.document_basics import EVENT_NAME, STEP_ID, Expression, Strict

TaskEnd = Literal["completed", "failed", "canceled", "rejected"]


class TaskEvent(Strict):
    """A delegated task of an agent (and skill) reaching one of ``states``."""

    agent: str = Field(description="the agent whose tasks start the flow (not the flow itself)")
    skill: str | None = Field(None, description="only tasks started for this skill")
    states: list[TaskEnd] = Field(
        default_factory=lambda: list[TaskEnd](["completed"]),
        min_length=1,
        description="which ends start it",
    )


class Webhook(Strict):
    """Signed requests to `POST /flows/{id}/hooks/{trigger}` (Standard Webhooks:
    `webhook-id`, `webhook-timestamp`, `webhook-signature` headers)."""

    secret: str = Field(
        pattern=r"^[a-z0-9_-]{1,64}$",
        description="the name of the HMAC-SHA256 secret in the gateway's `secrets` setting",
    )


class Schedule(Strict):
    """A cron schedule (DBOS's scheduler: 5 fields, or 6 with seconds first)."""

    cron: str = Field(min_length=9, max_length=120, description="e.g. '0 2 * * *': 02:00 daily")
    timezone: str | None = Field(None, max_length=64, description="IANA name; default UTC")
    # None (not "none") when absent, so documents stored before these keys
    # existed dump alike and registering them again is no new version.
    catch_up: Literal["none", "latest", "all"] | None = Field(
        None,
        description="ticks missed while no gateway ran, at the next start: none (default, "
        "as cron), the latest one, or all (the newest catch_up_max)",
    )
    catch_up_max: int | None = Field(
        None, ge=1, le=100, description="with catch_up: all, at most this many runs (default 10)"
    )

    @model_validator(mode="after")
    def _valid(self) -> Schedule:
        if not croniter.is_valid(self.cron, second_at_beginning=True):
            raise ValueError(f"not a cron expression: {self.cron!r}")
        if self.catch_up_max is not None and self.catch_up != "all":
            raise ValueError("catch_up_max is for catch_up: all")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"no time zone {self.timezone!r}") from None
        return self


class Deliver(Strict):
    """What a webhook brings to runs already going (`gateway.flows.webhooks`):
    its body as ``event``, to the runs of this flow waiting for that event
    whose ``wait.key`` equals ``key`` evaluated over the delivery."""

    event: str = Field(pattern=EVENT_NAME, description="the event a wait step waits for")
    key: Expression = Field(description="from event (the JSON body) and webhook.id: the run's key")


class RunAs(Strict):
    """Who a webhook's run acts for: a service identity of the flow's own,
    decided by the policy like any caller (issuer `urn:switchboard:trigger`)."""

    subject: str = Field(pattern=r"^[A-Za-z0-9._@:-]{1,128}$")
    scopes: list[str] = Field(
        default_factory=list, max_length=50, description="what its calls may carry, at most"
    )


class Trigger(Strict):
    """What starts a run without anyone asking: a delegated task's end (the run
    acts for that task's user, `gateway.flows.triggers`) or a signed webhook
    (it acts for `run_as`, `gateway.flows.webhooks`)."""

    id: str = Field(pattern=STEP_ID, description="unique among the flow's triggers")
    task: TaskEvent | None = None
    webhook: Webhook | None = None
    schedule: Schedule | None = None
    deliver: Deliver | None = Field(
        None, description="a webhook's: feed waiting runs instead of starting one (no run_as)"
    )
    run_as: RunAs | None = Field(
        None, description="a webhook's or a schedule's identity (not for task)"
    )
    input: Expression | None = Field(
        None,
        description="the run's input, from task.{id, agent, skill, state, output, text, user} "
        "(default: the task's output if an object, else {text}); for a webhook, from "
        "event (its JSON body) and webhook.id (default: the body); for a schedule, from "
        "schedule.time (default: {})",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        kinds = [k for k in (self.task, self.webhook, self.schedule) if k is not None]
        if len(kinds) != 1:
            raise ValueError("a trigger has exactly one of task, webhook or schedule")
        if self.deliver is not None:
            if self.webhook is None:
                raise ValueError("deliver goes with webhook")
            if self.run_as is not None or self.input is not None:
                raise ValueError("a webhook that delivers starts no run: no run_as, no input")
            return self
        if self.task is None and self.run_as is None:
            raise ValueError(
                "a webhook or schedule trigger needs run_as: the identity its runs act for"
            )
        if self.task is not None and self.run_as is not None:
            raise ValueError("a task trigger's run acts for the task's user: no run_as")
        return self
