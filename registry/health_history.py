"""An agent's health history: each change of status the health checks decide
(`registry.health`) is kept as a row of ``agent_health_events`` -- not each
check, so a steady agent adds nothing and a flapping one at most a row per
threshold crossing -- with the newest `MAX_HEALTH_EVENTS` per agent kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registry.models import HealthEvent, HealthStatus
from registry.tables import agent_health_events, as_utc

MAX_HEALTH_EVENTS = 200


async def note_change(
    conn: AsyncConnection,
    agent_id: str,
    previous: str | None,
    status: HealthStatus,
    detail: str | None,
    at: datetime,
) -> None:
    """In the transaction that records a check: a row if the status changed."""
    if previous == status.value:
        return
    await conn.execute(
        insert(agent_health_events).values(
            agent_id=agent_id, at=at, status=status.value, previous=previous, detail=detail
        )
    )
    # Past the newest MAX_HEALTH_EVENTS: the oldest go (the primary key's order).
    kept = (
        select(agent_health_events.c.at)
        .where(agent_health_events.c.agent_id == agent_id)
        .order_by(agent_health_events.c.at.desc())
        .offset(MAX_HEALTH_EVENTS)
        .limit(1)
        .scalar_subquery()
    )
    await conn.execute(
        delete(agent_health_events).where(
            agent_health_events.c.agent_id == agent_id, agent_health_events.c.at <= kept
        )
    )


async def history(engine: AsyncEngine, agent_id: str, limit: int = 50) -> list[HealthEvent]:
    """The agent's changes of health, newest first."""
    events = agent_health_events.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(events.at, events.status, events.previous, events.detail)
                .where(events.agent_id == agent_id)
                .order_by(events.at.desc())
                .limit(limit)
            )
        ).all()
    return [
        HealthEvent(
            at=as_utc(row.at),
            status=HealthStatus(row.status),
            previous=HealthStatus(row.previous) if row.previous else None,
            detail=row.detail,
        )
        for row in rows
    ]
