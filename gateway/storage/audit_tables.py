"""The audit log's tables (`gateway.delegation.audit`): one row per decision,
and the export's cursors and dead letters (`gateway.audit_export`). Migrated
with the rest (`gateway.storage.db.TARGET_METADATA`)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# One row per decision (allow or deny), never a token value: `token_id` is the
# minted token's `jti`, which identifies it without being usable.
audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("event", String(64), nullable=False),  # migration 0013
    Column("subject", Text, nullable=False),
    Column("subject_issuer", Text, nullable=False),
    Column("client_id", Text, nullable=True),
    Column("actors", JSON, nullable=False),
    Column("target", String(128), nullable=True),  # migration 0032
    Column("action", Text, nullable=True),
    Column("scopes_requested", Text, nullable=True),
    Column("scopes_granted", Text, nullable=False),
    Column("decision", String(8), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("outcome", String(64), nullable=False),  # migration 0013
    Column("detail", Text, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("token_id", String(64), nullable=True),
    # Which process wrote it (`AuditLog.writer`): each writer's records are
    # committed one batch at a time, so within a writer ids are commit order --
    # what an export's cursor needs (migration 0030, `gateway.audit_export`).
    Column("writer", String(64), nullable=True),
    # What a policy decision was made on (`AuditEvent.decided_on`, migration
    # 0039): NULL for a record that is no policy decision.
    Column("decided_on", JSON(none_as_null=True), nullable=True),
    Index("ix_audit_subject", "subject", "id"),
    Index("ix_audit_target", "target", "id"),
    Index("ix_audit_at", "at"),
    Index("ix_audit_trace", "trace_id", "id"),  # migration 0019
    Index("ix_audit_writer", "writer", "id"),  # migration 0030
    Index("ix_audit_event", "event", "id"),  # migration 0033: ?kind=change
)

# The audit export (`gateway.audit_export`): per sink and writer, the last
# record delivered, who is delivering it (the replica holding its lease:
# `gateway.storage.leases`), and the current failing stretch. A writer's
# stream is delivered in order by one replica at a time.
audit_export_streams = Table(
    "audit_export_streams",
    metadata,
    Column("sink", String(32), primary_key=True),
    Column("writer", String(64), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    # The last record of the batch in flight, while one is being retried: the
    # same batch (and webhook id) goes again, however many records came since.
    Column("batch_until", BigInteger, nullable=True),
    Column("lease_owner", String(64), nullable=True),  # the holding replica
    Column("lease_until", DateTime(timezone=True), nullable=True),  # older gateways'
    Column("lease_generation", Integer, nullable=False, server_default="0"),  # migration 0041
    Column("failures", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Records a sink refused for good, or could not take in `audit_export_max_attempts`
# tries: kept here (and counted, and logged) instead of dropped; replayable.
audit_dead_letters = Table(
    "audit_dead_letters",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("sink", String(32), nullable=False),
    Column("audit_id", BigInteger, nullable=False),
    Column("writer", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("error", Text, nullable=False),
    Index("ix_dead_letters_sink", "sink", "id"),
)
