"""Calls a coordination rule in `mode: defer` holds back
(`policies.coordination`): kept, then made when what held them ends.

A deferred call is an approval (`gateway.delegation.approvals`: the request,
who asked -- never a token --, its task or MCP follow-up) with a row here
naming what holds it back (a rule and an entity's key) and its rank among the
entity's deferred calls (the policy's `priority` rule). Nobody has to approve
it: `Deferrals.tick` (every replica, every `interval` seconds) releases the
waiting calls whose rule keeps nothing for their key any more, first rank
first and oldest first, by approving them on the desk as the gateway
(`decided_by: coordination`) -- an A2A call is then made as an approved one
(`gateway.a2a.approved`: decided again and minted at that moment, for the
original caller, so a released call keeps exactly its user's rights and
meets the rules again); an MCP client collecting it gets the call's result.
A call of a lower rank that waited longer than the priority rule's `ttl` is
given up (rejected by `coordination`, its reason said).

Two replicas releasing at once: the desk's first decision wins; the other's
is a no-op. A call released into a rule that has meanwhile closed again (a
hold reopened) is refused then, with the rule named.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.coordination import Coordination
from gateway.delegation.permits import Deferral
from gateway.storage.tables import coordination_deferrals as table

logger = logging.getLogger(__name__)
WAITING, RELEASED, EXPIRED, ENDED = "waiting", "released", "expired", "ended"
DECIDED_BY = "coordination"


@dataclass(frozen=True)
class Waiting:
    approval_id: str
    rule: str
    key: str
    entity: str
    kind: str
    rank: int
    created_at: float
    expires_at: float | None


Release = Callable[[str, str], Awaitable[None]]  # approval id, the reason


class Deferrals:
    def __init__(
        self,
        engine: AsyncEngine,
        coordination: Coordination | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.coordination = coordination
        self.clock = clock

    async def add(self, approval_id: str, deferral: Deferral) -> None:
        now = self.clock()
        wait = deferral.wait_seconds
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(table).values(
                    approval_id=approval_id,
                    rule=deferral.rule,
                    key=deferral.key,
                    entity=deferral.entity,
                    kind=deferral.kind,
                    rank=deferral.rank,
                    created_at=now,
                    expires_at=now + wait if wait is not None else None,
                    state=WAITING,
                )
            )

    async def waiting(self) -> list[Waiting]:
        query = (
            select(table)
            .where(table.c.state == WAITING)
            .order_by(table.c.rank, table.c.created_at)
            .limit(1000)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Waiting(**{k: v for k, v in row.items() if k != "state"}) for row in rows]

    async def mark(self, approval_id: str, state: str) -> bool:
        """Move a waiting deferral on; False when another replica (or the
        requester withdrawing it) did first."""
        async with self.engine.begin() as conn:
            moved = await conn.execute(
                update(table)
                .where(table.c.approval_id == approval_id, table.c.state == WAITING)
                .values(state=state)
            )
        return bool(moved.rowcount)

    async def tick(self, release: Release, give_up: Release) -> int:
        """Release what may go now, give up what waited too long; how many moved."""
        assert self.coordination is not None
        now, moved = self.clock(), 0
        blocked: dict[tuple[str, str], bool] = {}
        for waiting in await self.waiting():
            if waiting.expires_at is not None and waiting.expires_at <= now:
                if await self.mark(waiting.approval_id, EXPIRED):
                    await give_up(
                        waiting.approval_id,
                        f"waited {now - waiting.created_at:.0f} s for rule {waiting.rule} on "
                        f"{waiting.entity} {waiting.key}; calls ranked before it go first",
                    )
                    moved += 1
                continue
            at = (waiting.rule, waiting.key)
            if at not in blocked:
                rows = await self.coordination.list(waiting.entity, waiting.key)
                blocked[at] = any(row.rule == waiting.rule for row in rows)
            if blocked[at] or not await self.mark(waiting.approval_id, RELEASED):
                continue
            await release(
                waiting.approval_id,
                f"rule {waiting.rule} keeps nothing for {waiting.entity} {waiting.key} any more",
            )
            moved += 1
        return moved

    async def run_forever(self, release: Release, give_up: Release, interval: float) -> None:
        while True:
            try:
                await self.tick(release, give_up)
            except Exception as exc:  # a database hiccup: try again next time
                logger.warning("deferred calls not released this time: %s", exc)
            await asyncio.sleep(interval)
