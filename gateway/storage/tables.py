"""SQL tables the gateway itself owns (registry tables live in `registry.tables`)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    # PEM, sealed with SWITCHBOARD_SECRET_KEY unless running --dev without one.
    Column("private_key", Text, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Set when the key is rotated out: past this instant it is no longer
    # published, so it is "now + the longest lifetime of a token it signed".
    Column("retires_at", DateTime(timezone=True), nullable=True),
)

# A2A tasks created through the gateway. The ids are the upstream agent's own
# (the gateway serves each agent at its own URL, so (agent, task id) is unique);
# the owner is who created the task, and only they can see or touch it.
a2a_tasks = Table(
    "a2a_tasks",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("task_id", String(256), primary_key=True),
    Column("context_id", String(256), nullable=True),
    Column("owner_subject", Text, nullable=False),
    Column("owner_issuer", Text, nullable=False),
    Column("state", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The last task snapshot the gateway saw (A2A 1.0 JSON), for ListTasks.
    Column("task", JSON, nullable=False),
    # Set while the gateway has lost contact with a running task (its stream
    # broke, or the agent could not be reached): when to ask the agent next,
    # since when, how many times, and on whose behalf (`gateway.agents.reconcile`).
    Column("reconcile_at", DateTime(timezone=True), nullable=True),
    Column("reconcile_since", DateTime(timezone=True), nullable=True),
    Column("reconcile_attempts", Integer, nullable=True),
    Column("reconcile_caller", JSON, nullable=True),
    # The skill the message that started the task was decided for, kept from
    # the first record: a message continuing the task is decided for it. NULL:
    # no skill in particular (started naming none, to an agent with several),
    # or recorded before migration 0012; continuing it is decided as for the
    # strictest skill (`gateway.delegation.handoffs.message_skill`).
    Column("skill", Text, nullable=True),
    # Who made the call that started it (`Caller.stored()`: no token), from the
    # first record: a flow its end triggers acts for them (migration 0016).
    Column("owner_caller", JSON, nullable=True),
    Index("ix_a2a_tasks_owner", "agent_id", "owner_subject", "updated_at"),
    Index("ix_a2a_tasks_context", "agent_id", "context_id"),
    Index("ix_a2a_tasks_reconcile", "reconcile_at"),
)

# Client assertion ids (`jti`) accepted at the token endpoint, until they
# expire: `key` is SHA-256 of "client id:jti" (`gateway.delegation.replay`).
used_assertions = Table(
    "used_assertions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_used_assertions_expiry", "expires_at"),
)

# Push notification configs a client set on one of its tasks. The upstream is
# given the gateway's relay URL instead of the client's (`relay_id` names it;
# the upstream proves itself with the relay token, stored as a hash), and the
# gateway forwards what arrives to `url` after the SSRF checks.
a2a_push_configs = Table(
    "a2a_push_configs",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("task_id", String(256), primary_key=True),
    Column("config_id", String(256), primary_key=True),
    Column("owner_subject", Text, nullable=False),
    Column("owner_issuer", Text, nullable=False),
    Column("relay_id", String(64), nullable=False, unique=True),
    Column("relay_token_hash", String(128), nullable=False),
    # The client's config as it sent it (A2A 1.0 JSON: url, token,
    # authentication.scheme) but for `authentication.credentials`, which is
    # kept apart, sealed with SWITCHBOARD_SECRET_KEY (`gateway.delegation.push`).
    Column("config", JSON, nullable=False),
    Column("credentials_sealed", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Calls the gateway runs itself for agents without tasks of their own
# (`gateway.delegation.task_runner`): a row exists while a call runs. `runner` is the
# replica running it and `attempts` the generation of its claim (the one fenced
# lease, `gateway.storage.leases`); a row whose replica is gone was interrupted
# (a crash, a restart) and is failed or, for an idempotent skill, run again.
# `lease_until`: the time lease of gateways before the replica directory (ours
# never passes). The task itself is in `a2a_tasks`.
gateway_runs = Table(
    "gateway_runs",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("task_id", String(256), primary_key=True),
    Column("skill", String(64), nullable=True),
    # The request as the adapter takes it (`adapters.base.Turn`) and on whose
    # behalf (`gateway.delegation.pipeline.Caller`), to run it again.
    Column("turn", JSON, nullable=False),
    Column("caller", JSON, nullable=False),
    Column("streaming", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("runner", String(64), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_gateway_runs_lease", "lease_until"),
)

# The replicas running now, and where the others reach each (`replica_url`): a
# 2025-11-25 MCP session lives in the replica that opened it, and its id names
# that replica, so any replica can pass a session's request on to it
# (`gateway.mcp.replicas`). `seen_at` is renewed while the replica runs; a row
# not renewed for a while is a replica that is gone.
gateway_replicas = Table(
    "gateway_replicas",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

# What the policy's coordination rules keep per business entity
# (`gateway.delegation.coordination`): an open hold, a cooldown, a call's
# exclusive lease (slot 0; in force while `until`, epoch seconds, is ahead),
# and a budget's count in one period (slot: the period's index since the
# epoch). Rows past `until` are spent: ignored, overwritten, purged.
coordination_state = Table(
    "coordination_state",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("slot", BigInteger, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("until", Float, nullable=False),
    Column("count", Integer, nullable=False),
    # A lease: the call that holds it. A hold or cooldown: the call that began it.
    Column("holder", String(64), nullable=True),
    Column("subject", Text, nullable=True),
    Column("agent", String(64), nullable=True),
    Column("action", Text, nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("opened_at", Float, nullable=False),
    Index("coordination_state_entity", "entity", "key"),
)

# Calls a coordination rule in `mode: defer` holds back
# (`gateway.delegation.deferrals`): each is also an approval (the request, its
# caller, its task), made when what held it back (`rule`, `key`) has ended --
# the first `rank` first -- or given up at `expires_at`.
coordination_deferrals = Table(
    "coordination_deferrals",
    metadata,
    Column("approval_id", String(40), primary_key=True),
    Column("rule", String(64), nullable=False),
    Column("key", String(256), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("state", String(16), nullable=False),  # waiting, released, expired, ended
    Index("ix_coordination_deferrals_waiting", "state", "rule", "key"),
    Index("ix_coordination_deferrals_entity", "state", "entity", "key"),  # migration 0019
)

# Calls the policy holds for a human's decision (`gateway.delegation.approvals`). A row is
# written when the call is asked for (the call is not made) and keeps everything
# needed to make it later on the requester's behalf -- never a token: the
# caller's identity, scopes and actor chain, and the request itself. `state`
# moves once, from `pending` to `approved`, `rejected` or `withdrawn`; what the
# approved call then did is `outcome` (and, for an MCP tool, its `result`).
approvals = Table(
    "approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("kind", String(8), nullable=False),  # "a2a" or "mcp"
    Column("target", String(64), nullable=False),
    Column("action_kind", String(8), nullable=False),  # "skill" or "tool"
    Column("action", Text, nullable=True),
    Column("tool", Text, nullable=True),  # the MCP tool name the client called
    Column("owner_subject", Text, nullable=False),
    Column("owner_issuer", Text, nullable=False),
    Column("caller", JSON, nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("request", JSON, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("task_id", String(256), nullable=True),
    Column("context_id", String(256), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", Text, nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("outcome", String(40), nullable=True),
    Column("result", JSON, nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # The work the held call was made under (`Caller.txn`): a flow run's step.
    Column("txn", String(160), nullable=True),
    Index("ix_approvals_state", "state", "created_at"),
    Index("ix_approvals_txn", "txn", "state"),
    Index("ix_approvals_task", "target", "task_id"),
    Index("ix_approvals_owner", "owner_subject", "created_at"),
)

# The web console's sessions (`gateway.console.sessions`, migration 0021). A row
# is keyed by the SHA-256 of the cookie's value, so reading the table gives no
# session away; it holds who logged in (subject, issuer, scopes, expiry) and the
# session's CSRF token -- never the user's upstream token.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("client_id", Text, nullable=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_console_sessions_expires", "expires_at"),
)

# Connected accounts (`gateway.connections`): a user's own tokens at an
# upstream that trusts only its own authorization server. The tokens and the
# client's secret are sealed (`policies.keys.seal_secret`, a purpose of their
# own); nothing here is ever shown or logged. `version` changes on every
# refresh: a replica refreshing writes only over the version it read, so
# one refresh wins and a rotated refresh token is never overwritten by an
# older one (RFC 9700 §4.14.2, refresh token rotation). `upstream` references
# `mcp_servers.id` ON DELETE CASCADE (in the migration: that table is the
# registry's metadata): a server removed takes its users' tokens with it, and
# an id registered again never finds a former server's.
upstream_connections = Table(
    "upstream_connections",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("upstream", String(64), nullable=False),
    Column("tokens", Text, nullable=False),
    Column("scope", Text, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("authorization_server", Text, nullable=False),
    Column("token_endpoint", Text, nullable=False),
    Column("revocation_endpoint", Text, nullable=True),
    Column("client", Text, nullable=False),
    Column("resource", Text, nullable=True),
    Column("version", Integer, nullable=False),
    # Set while one replica refreshes the tokens (a claim, not a lock held
    # across an await): the others wait for the new version.
    Column("refreshing_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("refreshed_at", DateTime(timezone=True), nullable=False),
    # Last used for a call, to the minute (written at most once a minute).
    Column("used_at", DateTime(timezone=True), nullable=True),
    Index("ux_upstream_connections_user", "upstream", "issuer", "subject", unique=True),
)

# The client the gateway registered at an upstream's authorization server
# (RFC 7591), shared by every user of that upstream: registered once, not
# once per user. Bound to the authorization server that issued it (a
# registration is never presented to another server).
upstream_clients = Table(
    "upstream_clients",
    metadata,
    Column("upstream", String(64), primary_key=True),
    Column("authorization_server", Text, nullable=False),
    Column("client", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# An A2A call held until its user connects their account at the agent
# (`gateway.agents.consents`): the held call is an approval the gateway
# releases when that connection is made.
consent_waits = Table(
    "consent_waits",
    metadata,
    Column(
        "approval_id",
        String(40),
        ForeignKey("approvals.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("upstream", String(64), nullable=False),
    Column("owner_subject", Text, nullable=False),
    Column("owner_issuer", Text, nullable=False),
    # A step-up: the connection (id:version) that lacked the scope; only
    # another one (the user connected again) releases the call.
    Column("refused_connection", String(80), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_consent_waits_user", "upstream", "owner_issuer", "owner_subject"),
)

# The policy as admins saved it through the API (`gateway.delegation.
# policy_versions`, migration 0031), when no policy file is set: the newest
# row is in force. `replaces` is the version it was saved over (0: the
# built-in default), unique: of two saves over one version, one is refused.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("replaces", Integer, nullable=False, unique=True),
    Column("document", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("author_subject", Text, nullable=False),
    Column("author_issuer", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
