"""The one lease of durable work that is not a flow run: a row names the
replica holding it (its holder) and the claim it holds it under (its
generation, raised by every claim). Flow runs are DBOS workflows, fenced by
DBOS itself (docs/architecture.md, "Durable work").

Nothing is renewed per row. A holder is alive as long as its replica is,
and the replica directory alone decides who is gone
(`gateway.storage.replicas.ReplicaDirectory.gone`). A row whose holder is
gone is taken by a compare-and-set on the holder and generation read
(`claim`, then `taken`): of two replicas taking one row, the second updates
nothing. Every write a holder makes is made only while both still match
(`held`, in its WHERE clause): a replica judged gone while it still ran --
paused, cut off -- writes nothing once another has taken its work.

Used by gateway-run tasks (`gateway.delegation.run_rows.RUN_LEASE`: the
generation is a run's `attempts`) and the audit export's streams
(`gateway.audit_export.streams.STREAM_LEASE`).

`NO_LEASE`: gateways before this mechanism held such rows by renewing a time
lease (`until`); every row written since carries one that never passes, so
such a gateway, in a rolling upgrade or a rollback, never takes one of
these, and a row it still renews is left to it until its lease passes
(`free`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, or_

NO_LEASE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Lease:
    """One table's lease: its holder, generation and (older gateways') time
    lease columns."""

    holder: Column[Any]
    generation: Column[Any]
    until: Column[Any]

    def held(self, holder: str, generation: int) -> list[ColumnElement[bool]]:
        """The row as long as ``holder`` holds it under ``generation``: in the
        WHERE clause of every write a holder makes."""
        return [self.holder == holder, self.generation == generation]

    def claim(self, holder: str | None, generation: int) -> list[ColumnElement[bool]]:
        """The row as it was read (``holder``, ``generation``), and not held by
        an older gateway's lease: the WHERE clause of a claim."""
        was = self.holder.is_(None) if holder is None else self.holder == holder
        return [was, self.generation == generation, self.free()]

    def taken(self, by: str, generation: int) -> dict[str, Any]:
        """The values of a claim by ``by`` of a row read at ``generation``."""
        return self.kept(by, generation + 1)

    def kept(self, by: str, generation: int) -> dict[str, Any]:
        """The lease values of a row ``by`` holds under ``generation``."""
        return {self.holder.key: by, self.generation.key: generation, self.until.key: NO_LEASE}

    def free(self) -> ColumnElement[bool]:
        """Not held by an older gateway's time lease (none, passed, or ours)."""
        return or_(self.until.is_(None), self.until < datetime.now(UTC), self.until >= NO_LEASE)


def free_at(until: datetime | None, now: datetime) -> bool:
    """`Lease.free` of a row read: whether an older gateway's lease holds it."""
    if until is None:
        return True
    until = until if until.tzinfo else until.replace(tzinfo=UTC)
    return until < now or until >= NO_LEASE
