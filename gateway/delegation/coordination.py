"""Keeping the policy's coordination rules (`policies.coordination`) for the
calls the gateway admits: the state of every hold, cooldown, exclusive lease
and budget, in the gateway's database so every replica sees the same.

`admit()` runs inside the delegation decision (`Delegations._permit`, after
the policy allowed the call and its rate limits counted it, before a token is
minted) in one transaction: it refuses a call a hold or cooldown in force
blocks, takes the call's leases and budget units, opens and closes holds --
all of it or, when one rule refuses, none of it. Two replicas racing on one
entity meet at the row's primary key: a lease or a budget's last unit goes to
exactly one of them (an INSERT .. ON CONFLICT DO UPDATE .. WHERE, atomic in
PostgreSQL and SQLite alike). `finished()` runs when the call's outcome is
recorded: it gives the leases back and, when the call succeeded, starts the
cooldowns that follow it.

The database unreachable: the call fails as any other would (a 503), unlike a
rate limit's counter store. A coordination rule keeps agents from acting on
the same customer at once; letting calls through blind would break the very
promise the rule was written for (docs/coordination.md).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.delegation.audit import AuditEvent, AuditLog
from gateway.delegation.permits import Admitted, Caller
from gateway.storage.tables import coordination_state
from policies.coordination import Keyed, Plan

logger = logging.getLogger(__name__)
AUDIT_EVENT = "coordination"
HOLDING = ("hold", "cooldown", "exclusive")  # slot 0, one row per rule and key


@dataclass(frozen=True)
class Blocked:
    """Why a call may not be made now, and until when."""

    rule: Keyed
    until: float  # epoch seconds
    detail: str
    now: float  # when it was found

    @property
    def retry_after(self) -> int:
        """Whole seconds, at least 1 (RFC 9110 §10.2.3)."""
        return max(1, math.ceil(self.until - self.now))

    def reason(self) -> str:
        when = datetime.fromtimestamp(self.until, UTC).isoformat(timespec="seconds")
        return (
            f"coordination rule {self.rule.rule} ({self.rule.kind}) on "
            f"{self.rule.entity} {self.rule.key}: {self.detail}, until {when}"
        )


class CoordinationBlocked(Exception):
    def __init__(self, blocked: Blocked) -> None:
        super().__init__(blocked.reason())
        self.blocked = blocked


@dataclass(frozen=True)
class StateRow:
    """One row of state, as `GET /coordination/holds` shows it."""

    rule: str
    kind: str
    entity: str
    key: str
    until: datetime
    opened_at: datetime
    count: int
    subject: str | None
    agent: str | None
    action: str | None
    trace_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "entity": self.entity,
            "key": self.key,
            "until": self.until.isoformat(),
            "opened_at": self.opened_at.isoformat(),
            "count": self.count,
            "opened_by": {"subject": self.subject, "agent": self.agent, "action": self.action},
            "trace_id": self.trace_id,
        }


class Coordination:
    def __init__(
        self, engine: AsyncEngine, audit: AuditLog, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock  # epoch seconds; every replica's clock is NTP-kept

    async def admit(
        self, plan: Plan, caller: Caller, agent: str, action: str | None, trace_id: str
    ) -> Admitted:
        """Take what ``plan`` asks for, or raise `CoordinationBlocked` having
        taken nothing."""
        now = self.clock()
        admitted = Admitted(secrets.token_hex(16), plan, caller, agent, action, trace_id)
        opened: list[Keyed] = []
        closed: list[Keyed] = []
        async with self.engine.begin() as conn:
            blocked = await self._blocking(conn, plan.blocked_by, now)
            if blocked is not None:
                raise CoordinationBlocked(blocked)
            for keyed in plan.leases:
                if not await self._take(conn, keyed, admitted, now, 0, now + keyed.seconds):
                    raise CoordinationBlocked(await self._held(conn, keyed, now))
            for keyed in plan.budgets:
                slot = int(now // keyed.seconds)
                if not await self._take(
                    conn, keyed, admitted, now, slot, (slot + 1) * keyed.seconds
                ):
                    until = (slot + 1) * keyed.seconds
                    raise CoordinationBlocked(
                        Blocked(keyed, until, f"{keyed.limit} calls per {_span(keyed)} made", now)
                    )
            for keyed in plan.closes:
                if await self._close(conn, keyed, now):
                    closed.append(keyed)
            for keyed in plan.opens:
                await self._put(conn, keyed, admitted, now, now + keyed.seconds)
                opened.append(keyed)
        await self._audit_holds(admitted, opened, "hold_opened")
        await self._audit_holds(admitted, closed, "hold_closed")
        return admitted

    async def finished(self, admitted: Admitted, succeeded: bool) -> None:
        """The call ended: its leases go back; its success starts cooldowns."""
        plan = admitted.plan
        if not plan.leases and not (succeeded and plan.cools):
            return
        now = self.clock()
        async with self.engine.begin() as conn:
            if plan.leases:
                await conn.execute(
                    delete(coordination_state).where(
                        coordination_state.c.holder == admitted.holder,
                        coordination_state.c.kind == "exclusive",
                    )
                )
            if succeeded:
                for keyed in plan.cools:
                    await self._put(conn, keyed, admitted, now, now + keyed.seconds)
        if succeeded and plan.cools:
            await self._audit_holds(admitted, plan.cools, "cooldown_started")

    async def state(self, plan: Plan) -> list[Blocked]:
        """What would hold ``plan``'s call back now, counting nothing (explain)."""
        now = self.clock()
        found: list[Blocked] = []
        async with self.engine.connect() as conn:
            for keyed in plan.blocked_by:
                blocked = await self._blocking(conn, (keyed,), now)
                if blocked is not None:
                    found.append(blocked)
            for keyed in plan.leases:
                row = await self._row(conn, keyed, 0)
                if row is not None and row.until > now:
                    found.append(await self._held(conn, keyed, now))
            for keyed in plan.budgets:
                slot = int(now // keyed.seconds)
                row = await self._row(conn, keyed, slot)
                if row is not None and row.count >= keyed.limit:
                    detail = f"{keyed.limit} calls per {_span(keyed)} made"
                    found.append(Blocked(keyed, (slot + 1) * keyed.seconds, detail, now))
        return found

    async def list(self, entity: str | None = None, key: str | None = None) -> list[StateRow]:
        """The holds, cooldowns, leases and budget counts in force."""
        query = select(coordination_state).where(coordination_state.c.until > self.clock())
        if entity is not None:
            query = query.where(coordination_state.c.entity == entity)
        if key is not None:
            query = query.where(coordination_state.c.key == key)
        query = query.order_by(coordination_state.c.entity, coordination_state.c.key)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.limit(1000))).mappings().all()
        return [_state_row(row) for row in rows]

    async def release(self, rule: str, key: str, by: str) -> int:
        """An admin ends what ``rule`` keeps for ``key`` (a hold, a cooldown,
        a stuck lease, a budget's count); how many rows ended."""
        where = and_(coordination_state.c.rule == rule, coordination_state.c.key == key)
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(coordination_state).where(where))).mappings().all()
            await conn.execute(delete(coordination_state).where(where))
        live = [row for row in rows if row["until"] > self.clock()]
        for row in live:
            await self.audit.record(
                AuditEvent(
                    event=AUDIT_EVENT,
                    trace_id=row["trace_id"] or secrets.token_hex(16),
                    subject=by,
                    subject_issuer="admin",
                    decision="allow",
                    outcome="released",
                    target=row["agent"],
                    action=row["action"],
                    reasons=(f"rule {rule} ({row['kind']}) on {row['entity']} {key}",),
                    detail=f"released by {by}",
                )
            )
        return len(live)

    async def purge(self, before: float | None = None) -> int:
        """Delete spent rows (retention)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(coordination_state).where(
                    coordination_state.c.until < (before or self.clock())
                )
            )
        return int(result.rowcount or 0)

    async def _blocking(
        self, conn: AsyncConnection, rules: Sequence[Keyed], now: float
    ) -> Blocked | None:
        if not rules:
            return None
        pairs = [(keyed.rule, keyed.key) for keyed in rules]
        row = (
            (
                await conn.execute(
                    select(coordination_state)
                    .where(
                        tuple_(coordination_state.c.rule, coordination_state.c.key).in_(pairs),
                        coordination_state.c.slot == 0,
                        coordination_state.c.until > now,
                    )
                    .order_by(coordination_state.c.until.desc())
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        keyed = next(k for k in rules if (k.rule, k.key) == (row["rule"], row["key"]))
        what = "a hold is open" if keyed.kind == "hold" else "a cooldown runs"
        return Blocked(keyed, row["until"], f"{what} (since {_by(row)})", now)

    async def _held(self, conn: AsyncConnection, keyed: Keyed, now: float) -> Blocked:
        row = await self._row(conn, keyed, 0)
        until = row.until if row is not None else now + 1
        who = f"{row.agent}" if row is not None else "another call"
        return Blocked(keyed, until, f"a call to {who} is in flight", now)

    async def _row(self, conn: AsyncConnection, keyed: Keyed, slot: int) -> Any:
        return (
            await conn.execute(
                select(coordination_state).where(
                    coordination_state.c.rule == keyed.rule,
                    coordination_state.c.key == keyed.key,
                    coordination_state.c.slot == slot,
                )
            )
        ).first()

    def _insert(self) -> Any:
        return pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert

    def _values(
        self, keyed: Keyed, admitted: Admitted, now: float, slot: int, until: float
    ) -> dict[str, Any]:
        return {
            "rule": keyed.rule,
            "key": keyed.key,
            "slot": slot,
            "kind": keyed.kind,
            "entity": keyed.entity,
            "until": until,
            "count": 1,
            "holder": admitted.holder,
            "subject": admitted.caller.subject,
            "agent": admitted.agent,
            "action": admitted.action,
            "trace_id": admitted.trace_id,
            "opened_at": now,
        }

    async def _take(
        self,
        conn: AsyncConnection,
        keyed: Keyed,
        admitted: Admitted,
        now: float,
        slot: int,
        until: float,
    ) -> bool:
        """A lease (free or spent) or a budget unit (the count below the
        limit): True when this call got it."""
        values = self._values(keyed, admitted, now, slot, until)
        table = coordination_state
        statement = self._insert()(table).values(values)
        if keyed.kind == "budget":
            statement = statement.on_conflict_do_update(
                index_elements=["rule", "key", "slot"],
                set_={"count": table.c.count + 1},
                where=table.c.count < keyed.limit,
            )
        else:
            statement = statement.on_conflict_do_update(
                index_elements=["rule", "key", "slot"],
                set_={k: statement.excluded[k] for k in values if k not in ("rule", "key", "slot")},
                where=table.c.until <= now,
            )
        taken = await conn.execute(statement.returning(table.c.rule))
        return taken.first() is not None

    async def _put(
        self, conn: AsyncConnection, keyed: Keyed, admitted: Admitted, now: float, until: float
    ) -> None:
        """Open a hold or start a cooldown (again: from now)."""
        values = self._values(keyed, admitted, now, 0, until)
        statement = self._insert()(coordination_state).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["rule", "key", "slot"],
            set_={k: statement.excluded[k] for k in values if k not in ("rule", "key", "slot")},
        )
        await conn.execute(statement)

    async def _close(self, conn: AsyncConnection, keyed: Keyed, now: float) -> bool:
        result = await conn.execute(
            delete(coordination_state)
            .where(
                coordination_state.c.rule == keyed.rule,
                coordination_state.c.key == keyed.key,
                coordination_state.c.slot == 0,
            )
            .returning(coordination_state.c.until)
        )
        return any(until > now for (until,) in result.all())

    async def _audit_holds(self, admitted: Admitted, rules: Iterable[Keyed], outcome: str) -> None:
        caller = admitted.caller
        for keyed in rules:
            await self.audit.record(
                AuditEvent(
                    event=AUDIT_EVENT,
                    trace_id=admitted.trace_id,
                    subject=caller.subject,
                    subject_issuer=caller.issuer,
                    client_id=caller.client_id,
                    actors=caller.actors,
                    decision="allow",
                    outcome=outcome,
                    target=admitted.agent,
                    action=admitted.action,
                    reasons=(f"rule {keyed.rule} ({keyed.kind}) on {keyed.entity} {keyed.key}",),
                )
            )


def _span(keyed: Keyed) -> str:
    seconds = int(keyed.seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


def _by(row: Any) -> str:
    opened = datetime.fromtimestamp(row["opened_at"], UTC).isoformat(timespec="seconds")
    return f"{opened}, by a call to {row['agent']} {row['action'] or ''}".rstrip()


def _state_row(row: Any) -> StateRow:
    return StateRow(
        rule=row["rule"],
        kind=row["kind"],
        entity=row["entity"],
        key=row["key"],
        until=datetime.fromtimestamp(row["until"], UTC),
        opened_at=datetime.fromtimestamp(row["opened_at"], UTC),
        count=row["count"],
        subject=row["subject"],
        agent=row["agent"],
        action=row["action"],
        trace_id=row["trace_id"],
    )
