"""Agents' health in the registry: which to check, one check at a time
across replicas, and what each found (`registry.health` runs the checks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.health_history import history, note_change
from registry.models import HealthEvent, HealthStatus
from registry.tables import agents


@dataclass(frozen=True)
class HealthClaim:
    """A check's claim of an agent: its health as claimed, and the claim's
    expiry (its token: `record_health` writes only under it)."""

    status: HealthStatus
    failures: int
    successes: int
    until: datetime


@dataclass(frozen=True)
class HealthTarget:
    agent_id: str
    card_url: str | None
    interface_url: str | None


class AgentHealthRecords:
    """The health half of `registry.store.SqlAgentStore`."""

    _engine: AsyncEngine

    async def health_targets(self, checked_before: datetime | None = None) -> list[HealthTarget]:
        """Every agent, or (``checked_before``) those not checked since then."""
        query = select(agents.c.id, agents.c.card_url, agents.c.card)
        if checked_before is not None:
            query = query.where(
                or_(
                    agents.c.health_checked_at.is_(None),
                    agents.c.health_checked_at < checked_before,
                )
            )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        targets = []
        for row in rows:
            interfaces = row.card.get("supportedInterfaces") or []
            first = interfaces[0].get("url") if interfaces else None
            targets.append(HealthTarget(row.id, row.card_url, first))
        return targets

    async def claim_health_check(self, agent_id: str, lease: timedelta) -> bool:
        """Take the right to check ``agent_id`` now; false if another check holds it."""
        return await self.claim_health_state(agent_id, lease) is not None

    async def claim_health_state(self, agent_id: str, lease: timedelta) -> HealthClaim | None:
        """Take the right to check ``agent_id`` now, and its health as it is
        (`health_state`: no other check writes it while the lease holds);
        None if another check holds it, or the agent is gone.

        A conditional UPDATE is atomic on both databases, so across replicas
        too, one agent is never checked twice at once. One statement
        (UPDATE ... RETURNING: SQLite 3.35, PostgreSQL). The claim's own
        expiry is its token: the outcome is written only while it is still
        the row's (`record_health`), so a check paused past its lease, whose
        agent another check claimed meanwhile, writes nothing.
        """
        now = _now()
        until = now + lease
        c = agents.c
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(agents)
                    .where(
                        c.id == agent_id,
                        or_(c.health_lease_until.is_(None), c.health_lease_until < now),
                    )
                    .values(health_lease_until=until)
                    .returning(c.health_status, c.health_failures, c.health_successes)
                )
            ).first()
        if row is None:
            return None
        status = HealthStatus(row.health_status)
        return HealthClaim(status, row.health_failures, row.health_successes, until)

    async def record_health(
        self,
        agent_id: str,
        status: HealthStatus,
        failures: int,
        successes: int,
        detail: str | None,
        previous: HealthStatus | None = None,
        claimed: datetime | None = None,
    ) -> bool:
        """Store a check's outcome (and release its lease); whether the agent
        is still registered (and, with ``claimed``, the claim's expiry: still
        under that claim). ``previous``: its status as the check claimed it
        (`claim_health_state`), else read here."""
        now = _now()
        async with self._engine.begin() as conn:
            was = (
                previous.value
                if previous is not None
                else await conn.scalar(
                    select(agents.c.health_status).where(agents.c.id == agent_id)
                )
            )
            held = [] if claimed is None else [agents.c.health_lease_until == claimed]
            result = await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id, *held)
                .values(
                    health_status=status.value,
                    health_failures=failures,
                    health_successes=successes,
                    health_detail=detail,
                    health_checked_at=now,
                    health_lease_until=None,
                )
            )
            registered = was is not None and result.rowcount == 1
            if registered:
                await note_change(conn, agent_id, was, status, detail, now)
        return registered

    async def health_history(self, agent_id: str, limit: int = 50) -> list[HealthEvent]:
        """The agent's changes of health, newest first (`registry.health_history`)."""
        return await history(self._engine, agent_id, limit)

    async def health_state(self, agent_id: str) -> tuple[HealthStatus, int, int] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        agents.c.health_status, agents.c.health_failures, agents.c.health_successes
                    ).where(agents.c.id == agent_id)
                )
            ).first()
        if row is None:
            return None
        return HealthStatus(row.health_status), row.health_failures, row.health_successes


def _now() -> datetime:
    return datetime.now(UTC)
