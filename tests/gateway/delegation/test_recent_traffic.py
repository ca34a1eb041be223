"""`RecentTraffic`: the hour is read once while fresh -- the writer's buffer
flushed first only when it is read anew -- and again once it is not."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.audit_traffic import RecentTraffic


def _call(n: int) -> AuditEvent:
    return AuditEvent(
        event="mcp",
        trace_id=f"{n:032x}",
        subject="alice",
        subject_issuer="https://issuer.example",
        decision="allow",
        outcome="ok",
        target="crm",
        latency_ms=float(n),
    )


async def test_read_once_while_fresh_then_again(engine: AsyncEngine) -> None:
    audit = AuditLog(engine)
    flushed: list[int] = []

    async def flush() -> None:
        flushed.append(1)
        await audit.flush()

    fresh = RecentTraffic(engine, fresh_seconds=3600)
    await audit.record(_call(1))
    assert (await fresh.get(before=flush)).calls == 1
    await audit.record(_call(2))
    assert (await fresh.get(before=flush)).calls == 1  # still the reading of before
    assert flushed == [1]
    stale = RecentTraffic(engine, fresh_seconds=0)
    assert (await stale.get(before=flush)).calls == 2
    assert (await stale.get(before=flush)).calls == 2 and flushed == [1, 1, 1]
