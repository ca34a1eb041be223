"""The settings of flows (`gateway.flows`): a part of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FlowOptions(BaseModel):
    flow_grant_max_seconds: float = Field(
        default=7 * 86400,
        ge=60,
        le=90 * 86400,
        description="The longest a flow run may act for its user (its durable grant's "
        "lifetime; a flow's max_run_seconds may shorten it).",
    )
    flow_checkpoint_poll_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How soon a run waiting at a checkpoint first looks at its approval, or "
        "one waiting for another agent's task at the task's record, even without being woken "
        "(a decision, or the task's end, normally wakes it at once); the looks then double "
        "apart, up to 15 minutes (or this, if longer).",
    )
    flow_wake_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="With serve --workers on SQLite, how often the flow engine looks for a "
        "message to a run waiting in another worker: one query per waiting run each time. "
        "Within one process a run is woken at once (and the look is once a minute); "
        "PostgreSQL wakes runs by LISTEN/NOTIFY.",
    )
    flow_consent_timeout_seconds: float = Field(
        default=86400.0,
        gt=0,
        le=30 * 86400,
        description="How long a flow run waits at auth_required for its user to connect "
        "their account at a step's server (docs/connections.md) before the step fails.",
    )
    flow_run_retention_days: float = Field(
        default=30.0,
        ge=0,
        le=3650,
        description="How long an ended flow run (its steps, inputs, outputs, grant) is kept, "
        "unless its flow says (retention_days); 0 keeps runs for ever.",
    )
    flow_retention_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="How often ended runs are redacted at rest and expired ones deleted.",
    )
    flow_trigger_sweep_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often tasks that ended lately are checked for the flow runs their "
        "triggers should have started (a crash between the two); each starts once.",
    )
    flow_retry_backoff_seconds: float = Field(
        default=0.2,
        gt=0,
        le=3600,
        description="How long a flow step with retries waits after its first failed attempt; "
        "each further wait doubles, up to flow_retry_backoff_max_seconds. The wait is a "
        "durable timer: a run resumed after a crash waits only for what is left.",
    )
    flow_retry_backoff_max_seconds: float = Field(
        default=5.0,
        gt=0,
        le=86400,
        description="The longest wait between two attempts of a flow step.",
    )
