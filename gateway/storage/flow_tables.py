"""The flows' tables (`gateway.flows`): definitions and their versions, runs,
their grants and steps, and what a user's budget for a flow has reserved.
Migrated with the rest (`gateway.storage.db.TARGET_METADATA`)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Flows (`gateway.flows`). A flow is a versioned document: `flows` holds the
# current version, `flow_versions` every version ever registered (like card
# versions). A run is an A2A task of the flow's agent (`a2a_tasks`, task id =
# run id) and a DBOS workflow (workflow id = run id, in DBOS's own tables);
# these rows are what the gateway shows of it and never drive it.
flows = Table(
    "flows",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("document", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

flow_versions = Table(
    "flow_versions",
    metadata,
    Column("flow_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A run's durable grant: what a run may do on its user's behalf, for how long
# -- never a token. Each step mints its own short-lived token from it, decided
# by the policy in force at that step; `revoked_at` stops the run at its next step.
flow_grants = Table(
    "flow_grants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("actors", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", Text, nullable=True),
    Column("revoke_reason", Text, nullable=True),
    Index("ix_flow_grants_run", "run_id"),
    Index("ix_flow_grants_subject", "subject", "issuer"),
)

flow_runs = Table(
    "flow_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("flow_id", String(64), nullable=False),
    Column("flow_version", Integer, nullable=False),
    Column("state", String(24), nullable=False),
    Column("owner_subject", Text, nullable=False),
    Column("owner_issuer", Text, nullable=False),
    Column("grant_id", String(40), nullable=False),
    Column("input", JSON, nullable=False),
    Column("output", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("trace_id", String(32), nullable=False),
    Column("context_id", String(256), nullable=False),
    Column("current_step", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # Set once the ended run's record is rewritten under its flow's `redact`.
    Column("redacted_at", DateTime(timezone=True), nullable=True),
    # A fork (`gateway.flows.forks`): the run it was forked from, and the step
    # of that run it started at (the steps before it reused, never sent again).
    Column("forked_from", String(64), nullable=True),
    Column("fork_step", String(64), nullable=True),
    Index("ix_flow_runs_flow", "flow_id", "created_at"),
    Index("ix_flow_runs_owner", "owner_subject", "created_at"),
    Index("ix_flow_runs_finished", "finished_at"),
    Index("ix_flow_runs_created", "created_at"),
    Index("ix_flow_runs_redacted", "redacted_at"),
    Index("ix_flow_runs_forked_from", "forked_from"),
)

# What the calls in flight of one user's runs of a flow may cost, reserved
# against the user's budget for it (`gateway.flows.reservations`, migration
# 0037): one row per call step, its `per_call` price as exact decimal text,
# removed when the step ends (its cost recorded by then) or the run does, and
# ignored past `expires_at` (the run's grant's end: no call is made after it).
flow_reservations = Table(
    "flow_reservations",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("step_id", String(64), primary_key=True),
    Column("flow_id", String(64), nullable=False),
    Column("owner_subject", Text, nullable=False),
    Column("owner_issuer", Text, nullable=False),
    Column("amount", String(40), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_flow_reservations_owner", "flow_id", "owner_subject", "owner_issuer"),
)

# One row per user and flow with a budget: what a reservation writes first, so
# that two reservations for one user's budget -- on any replica -- are made one
# after the other (PostgreSQL's row lock until commit; SQLite's write lock).
flow_budget_locks = Table(
    "flow_budget_locks",
    metadata,
    Column("flow_id", String(64), primary_key=True),
    Column("owner_subject", Text, primary_key=True),
    Column("owner_issuer", Text, primary_key=True),
    Column("locked_at", DateTime(timezone=True), nullable=False),
)

# One row per step of a run (a parallel step's branches each have theirs,
# with `parent`). `sent_at` is written just before a call is sent and
# `upstream_task_id` as soon as the agent names its task: after a crash a step
# with the id re-attaches to that task, and one sent without an id known is
# not sent again unless its target is idempotent.
flow_steps = Table(
    "flow_steps",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("step_id", String(64), primary_key=True),
    Column("parent", String(64), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(24), nullable=False),
    Column("target", Text, nullable=True),
    Column("action", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("input", JSON, nullable=True),
    Column("output", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("upstream_task_id", String(256), nullable=True),
    Column("token", JSON, nullable=True),
    Column("approval_id", String(40), nullable=True),
    Column("trace_id", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # {input_tokens, output_tokens, total_tokens}, as the upstream reported them.
    Column("usage", JSON, nullable=True),
    # A fork's step before its start: the run whose record this is a copy of
    # (its output reused; nothing was sent, nothing spent by the fork).
    Column("reused_from", String(64), nullable=True),
)
