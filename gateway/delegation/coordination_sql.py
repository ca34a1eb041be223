"""The coordination rules' state in the gateway's database (the embedded
default, and any deployment without Redis): `coordination_state`, one row per
rule and key (slot 0), and per period for a budget (slot: the period's index
since the epoch). Rows past `until` are spent: ignored, overwritten, purged.

A call's checks and takings are one transaction. Two replicas racing for one
entity's lease or a budget's last unit meet at the row's primary key, through
an INSERT .. ON CONFLICT DO UPDATE .. WHERE that is atomic in PostgreSQL and
SQLite alike: exactly one of them gets it (RETURNING says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.delegation.coordination import (
    Blocked,
    CoordinationBlocked,
    StateRow,
    blocked_by,
    new_row,
    spent,
)
from gateway.delegation.permits import Admitted
from gateway.storage.tables import coordination_state as table
from policies.coordination import Keyed, Plan

_PRIMARY = ("rule", "key", "slot")


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert: Any = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def take(self, admitted: Admitted, now: float) -> None:
        plan = admitted.plan
        async with self.engine.begin() as conn:
            found = await self._blocking(conn, plan.blocked_by, now)
            if found is not None:
                raise CoordinationBlocked(found)
            for keyed in plan.leases:
                if not await self._take(
                    conn, new_row(keyed, admitted, now, 0, now + keyed.seconds), keyed
                ):
                    row = await self._row(conn, keyed, 0)
                    raise CoordinationBlocked(
                        blocked_by(keyed, row, now)
                        if row
                        else Blocked(keyed, now + 1, "another call is in flight", now)
                    )
            for keyed in plan.budgets:
                slot = int(now // keyed.seconds)
                row = new_row(keyed, admitted, now, slot, (slot + 1) * keyed.seconds)
                if not await self._take(conn, row, keyed):
                    raise CoordinationBlocked(spent(keyed, now))

    async def give_back(
        self, admitted: Admitted, succeeded: bool, now: float
    ) -> tuple[list[Keyed], list[Keyed]]:
        plan, closed = admitted.plan, []
        async with self.engine.begin() as conn:
            if plan.leases:
                await conn.execute(
                    delete(table).where(
                        table.c.holder == admitted.holder, table.c.kind == "exclusive"
                    )
                )
            if not succeeded:
                return [], []
            for keyed in plan.closes:
                if await self._close(conn, keyed, now):
                    closed.append(keyed)
            for keyed in (*plan.opens, *plan.cools):
                await self._put(conn, new_row(keyed, admitted, now, 0, now + keyed.seconds))
        return list(plan.opens), closed

    async def blocking(self, plan: Plan, now: float) -> list[Blocked]:
        found: list[Blocked] = []
        async with self.engine.connect() as conn:
            for keyed in (*plan.blocked_by, *plan.leases):
                row = await self._row(conn, keyed, 0)
                if row is not None and row.until > now:
                    found.append(blocked_by(keyed, row, now))
            for keyed in plan.budgets:
                row = await self._row(conn, keyed, int(now // keyed.seconds))
                if row is not None and row.count >= keyed.limit:
                    found.append(spent(keyed, now))
        return found

    async def rows(self, entity: str | None, key: str | None, now: float) -> list[StateRow]:
        query = select(table).where(table.c.until > now)
        if entity is not None:
            query = query.where(table.c.entity == entity)
        if key is not None:
            query = query.where(table.c.key == key)
        query = query.order_by(table.c.entity, table.c.key, table.c.rule).limit(1000)
        async with self.engine.connect() as conn:
            return [StateRow(**row) for row in (await conn.execute(query)).mappings()]

    async def remove(self, rule: str, key: str, now: float) -> list[StateRow]:
        where = (table.c.rule == rule, table.c.key == key)
        async with self.engine.begin() as conn:
            rows = [
                StateRow(**r) for r in (await conn.execute(select(table).where(*where))).mappings()
            ]
            await conn.execute(delete(table).where(*where))
        return [row for row in rows if row.until > now]

    async def purge(self, now: float) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(table).where(table.c.until < now))
        return int(result.rowcount or 0)

    async def _blocking(
        self, conn: AsyncConnection, rules: Sequence[Keyed], now: float
    ) -> Blocked | None:
        if not rules:
            return None
        query = select(table).where(
            tuple_(table.c.rule, table.c.key).in_([(k.rule, k.key) for k in rules]),
            table.c.slot == 0,
            table.c.until > now,
        )
        live = {
            (r.rule, r.key): r
            for r in map(lambda m: StateRow(**m), (await conn.execute(query)).mappings())
        }
        # The first of ``rules`` in force (`plan` puts those that refuse first).
        for keyed in rules:
            row = live.get((keyed.rule, keyed.key))
            if row is not None:
                return blocked_by(keyed, row, now)
        return None

    async def _row(self, conn: AsyncConnection, keyed: Keyed, slot: int) -> StateRow | None:
        query = select(table).where(
            table.c.rule == keyed.rule, table.c.key == keyed.key, table.c.slot == slot
        )
        found = (await conn.execute(query)).mappings().first()
        return StateRow(**found) if found is not None else None

    async def _take(self, conn: AsyncConnection, row: StateRow, keyed: Keyed) -> bool:
        """A lease (free or spent) or a budget unit (the count below the
        limit): True when this call got it."""
        values = asdict(row)
        statement = self._insert(table).values(values)
        if keyed.kind == "budget":
            statement = statement.on_conflict_do_update(
                index_elements=list(_PRIMARY),
                set_={"count": table.c.count + 1},
                where=table.c.count < keyed.limit,
            )
        else:
            statement = statement.on_conflict_do_update(
                index_elements=list(_PRIMARY),
                set_={k: statement.excluded[k] for k in values if k not in _PRIMARY},
                # Spent, or reserved for this very call (`Coordination.reserve`).
                where=(table.c.until <= row.opened_at) | (table.c.holder == row.holder),
            )
        taken = await conn.execute(statement.returning(table.c.rule))
        return taken.first() is not None

    async def _put(self, conn: AsyncConnection, row: StateRow) -> None:
        """Open a hold or start a cooldown (again: from now)."""
        values = asdict(row)
        statement = self._insert(table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=list(_PRIMARY),
            set_={k: statement.excluded[k] for k in values if k not in _PRIMARY},
        )
        await conn.execute(statement)

    async def _close(self, conn: AsyncConnection, keyed: Keyed, now: float) -> bool:
        result = await conn.execute(
            delete(table)
            .where(table.c.rule == keyed.rule, table.c.key == keyed.key, table.c.slot == 0)
            .returning(table.c.until)
        )
        return any(until > now for (until,) in result.all())
