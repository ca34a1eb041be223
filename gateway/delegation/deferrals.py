"""Calls a coordination rule in `mode: defer` holds back
(`policies.coordination`): kept, then made when what held them ends.

A deferred call is an approval (`gateway.delegation.approvals`: the request,
who asked -- never a token --, its task or MCP follow-up) with a row here
naming what holds it back (a rule and an entity's key) and its rank among the
entity's deferred calls (the policy's `priority` rule). Nobody has to approve
it: `Deferrals.tick` (every replica, `poll_seconds()` apart) releases the
waiting calls whose rule keeps nothing for their key any more, first rank
first and oldest first, by approving them on the desk as the gateway
(`decided_by: coordination`) -- an A2A call is then made as an approved one
(`gateway.agents.approved`: decided again and minted at that moment, for the
original caller, so a released call keeps exactly its user's rights and
meets the rules again); an MCP client collecting it gets the call's result.
A call of a lower rank that waited longer than the priority rule's `ttl` is
given up (rejected by `coordination`, its reason said). Before a call is
released its rules are asked again: held back by another deferring rule (the
cooldown the hold's closing started), it waits on that one instead.

Calls waiting for an exclusive lease (`mode: defer` on an `exclusive` rule)
get it one at a time: the call released is given its leases at once, reserved
under its approval (`Coordination.reserve`; it takes them over when it is
made, `coordination.claiming`), so the next in rank waits on, and no call
arriving meanwhile takes the entity from it. A released call not made within
`RESERVED_SECONDS` (an MCP client slow to come back for it) loses them.

How often a replica looks (`pace`, a `gateway.storage.periodic.Pace`): every
`BUSY_SECONDS` while it knows of waiting calls -- it saw some at its last
look, or kept one itself lately (`add`, which also wakes the look) -- else
every `IDLE_SECONDS`. A gateway with no deferred call reads the table twice a
minute, not four times a second (docs/performance.md, "An idle gateway").
Nothing waits on a replica's knowledge alone: the replica that kept a call
looks every `BUSY_SECONDS` until it is released, wherever what held it ends
(the rules' state is shared); a call kept by a replica gone since is found
by the others' idle look.

Two replicas releasing at once: the desk's first decision wins; the other's
is a no-op. A call released into a rule that closes again at that very
instant (a hold reopened) fails then, with the rule named: an approval is
one attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.delegation.approval_store import Approvals
from gateway.delegation.approvals import PENDING, Approval, ApprovalNotFound
from gateway.delegation.coordination import Canonical, Coordination
from gateway.delegation.handoffs import json_inputs
from gateway.delegation.permits import Deferral
from gateway.storage.periodic import Pace
from gateway.storage.tables import coordination_deferrals as table
from policies.coordination import Plan, entity_keys, plan
from policies.policy_file import PolicySource

logger = logging.getLogger(__name__)
WAITING, RELEASED, EXPIRED, ENDED = "waiting", "released", "expired", "ended"
DECIDED_BY = "coordination"
# How soon a deferred call follows the end of what held it back, while this
# replica knows of waiting calls; and how often it looks when it knows of none.
BUSY_SECONDS = 0.5
IDLE_SECONDS = 30.0


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
        approvals: Approvals | None = None,
        policy: PolicySource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.coordination = coordination
        self.approvals = approvals
        self.policy = policy
        self.clock = clock
        self.pace = Pace(BUSY_SECONDS, IDLE_SECONDS)

    async def add(
        self, approval_id: str, deferral: Deferral, *, conn: AsyncConnection | None = None
    ) -> None:
        """Keep the deferred call's wait; in ``conn``'s transaction when given
        (the one that stores its task and approval)."""
        now = self.clock()
        wait = deferral.wait_seconds
        row = insert(table).values(
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
        if conn is not None:
            await conn.execute(row)
        else:
            async with self.engine.begin() as own:
                await own.execute(row)
        self.pace.kept()

    async def waiting(self, entity: str | None = None, key: str | None = None) -> list[Waiting]:
        """Waiting calls, first rank first, oldest first (of one entity's key)."""
        query = select(table).where(table.c.state == WAITING)
        if entity is not None and key is not None:
            query = query.where(table.c.entity == entity, table.c.key == key)
        query = query.order_by(table.c.rank, table.c.created_at).limit(1000)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Waiting(**{k: v for k, v in row.items() if k != "state"}) for row in rows]

    async def mark(self, approval_id: str, state: str, **moved: Any) -> bool:
        """Move a waiting deferral on (or onto another rule, ``moved``); False
        when another replica did first."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(table)
                .where(table.c.approval_id == approval_id, table.c.state == WAITING)
                .values(state=state, **moved)
            )
        return bool(result.rowcount)

    async def tick(self, release: Release, give_up: Release) -> int:
        """Give up what waited too long; release what may go now. How many
        moved. Looked at per entity's key (at most 1,000 of them a tick), so
        calls piling up behind one hold never keep others waiting."""
        assert self.coordination is not None
        now, moved = self.clock(), 0
        groups = await self._groups()
        self.pace.looked(bool(groups))
        if not groups:
            return 0  # nothing waits: one read
        for waiting in await self._expired(now):
            # Given up first, marked after: a replica that dies between the
            # two leaves a row the next tick moves on (the desk's first
            # decision stands).
            await give_up(
                waiting.approval_id,
                f"waited {now - waiting.created_at:.0f} s for rule {waiting.rule} on "
                f"{waiting.entity} {waiting.key}; calls ranked before it go first",
            )
            moved += await self.mark(waiting.approval_id, EXPIRED)
        for entity, key in await self._groups():
            # One entity's calls in rank order, whatever rule holds each: the
            # first that may go reserves the leases it needs, so those after
            # it wanting the same are held again (`_asked_again`).
            kept: dict[str, bool] = {}
            for waiting in await self.waiting(entity, key):
                if waiting.rule not in kept:
                    kept[waiting.rule] = await self.coordination.keeps(waiting.rule, entity, key)
                if kept[waiting.rule]:
                    continue  # still held back
                approval = await self._pending(waiting)
                if approval is False:
                    continue
                if approval is not None:
                    asked = await self._asked_again(waiting, approval)
                    if asked is None:
                        continue
                    if asked.leases and not await self._reserve(asked, approval):
                        continue  # a lease went to another call first: next tick
                await release(
                    waiting.approval_id,
                    f"rule {waiting.rule} keeps nothing for {waiting.entity} {waiting.key} "
                    "any more",
                )
                moved += await self.mark(waiting.approval_id, RELEASED)
        return moved

    async def _expired(self, now: float) -> list[Waiting]:
        query = (
            select(table)
            .where(table.c.state == WAITING, table.c.expires_at <= now)
            .order_by(table.c.expires_at)
            .limit(1000)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Waiting(**{k: v for k, v in row.items() if k != "state"}) for row in rows]

    async def _groups(self) -> list[tuple[str, str]]:
        query = (
            select(table.c.entity, table.c.key)
            .where(table.c.state == WAITING)
            .group_by(table.c.entity, table.c.key)
            .limit(1000)
        )
        async with self.engine.connect() as conn:
            return [(e, k) for e, k in (await conn.execute(query)).all()]

    async def _pending(self, waiting: Waiting) -> Approval | Literal[False] | None:
        """The waiting call's approval; False for a call no longer pending
        (withdrawn, decided by an admin): done with here. None: no desk to
        ask (a call is then released as it is)."""
        if self.approvals is None or self.policy is None or self.coordination is None:
            return None
        try:
            approval = await self.approvals.get(waiting.approval_id)
        except ApprovalNotFound:
            await self.mark(waiting.approval_id, ENDED)
            return False
        if approval.state != PENDING:
            await self.mark(waiting.approval_id, ENDED)
            return False
        return approval

    async def _asked_again(self, waiting: Waiting, approval: Approval) -> Plan | None:
        """What the rules ask of the call now, or None when, its own rule
        over, it is held back by another that defers (a cooldown that the
        hold's closing started; the lease just reserved for a call released
        before it): it then waits on that one instead."""
        assert self.policy is not None
        assert self.coordination is not None
        request = approval.request
        inputs = (
            json_inputs(request) if approval.kind == "a2a" else [request.get("arguments") or {}]
        )
        rules = self.policy.current.coordination
        try:
            keys = entity_keys(rules, approval.target, approval.action, inputs)
        except ValueError:
            return Plan()  # released: deciding it again says why it cannot go
        asked = plan(rules, approval.target, approval.action, keys)
        for blocked in await self.coordination.state(asked):
            keyed = blocked.rule
            if keyed.kind != "budget" and keyed.mode == "defer":
                await self.mark(
                    waiting.approval_id,
                    WAITING,
                    rule=keyed.rule,
                    key=keyed.key,
                    entity=keyed.entity,
                    kind=keyed.kind,
                )
                return None
        return asked

    async def _reserve(self, asked: Plan, approval: Approval) -> bool:
        """A call that takes exclusive leases is released holding them
        (`Coordination.reserve`): the calls waiting for one entity get it one
        at a time, first rank first, and no call arriving meanwhile takes it
        from the one released. False: one was taken by another call first."""
        assert self.coordination is not None
        return await self.coordination.reserve(
            asked.leases,
            approval.id,
            approval.caller(),
            approval.target,
            approval.action,
            approval.trace_id,
        )


async def canonicalise_waiting(engine: AsyncEngine, canonical: Canonical) -> int:
    """Re-key waiting deferrals kept under a key that is not canonical (written
    before keys were canonicalised): they are released when what holds their
    canonical key ends. How many moved."""
    query = select(table.c.approval_id, table.c.entity, table.c.key).where(table.c.state == WAITING)
    moved = 0
    async with engine.begin() as conn:
        for approval_id, entity, key in (await conn.execute(query)).all():
            if (wanted := canonical(entity, key)) != key:
                await conn.execute(
                    update(table).where(table.c.approval_id == approval_id).values(key=wanted)
                )
                moved += 1
    return moved
