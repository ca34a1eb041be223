"""The coordination rules' state in the gateway's database (the embedded
default, and any deployment without Redis): `coordination_state`, one row per
rule and key (slot 0), and per period for a budget (slot: the period's index
since the epoch). Rows past `until` are spent: ignored, overwritten, purged.

A call's checks and takings are one transaction. Two replicas racing for one
entity's lease or a budget's last unit meet at the row's primary key, through
an INSERT .. ON CONFLICT DO UPDATE .. WHERE that is atomic in PostgreSQL and
SQLite alike: exactly one of them gets it (RETURNING says which).

How it is run, for speed (bench/coordination.py: this is on the path of
every call a rule names): each operation is one function over the minimal
statement runner of `gateway.storage.statements` (`Sql`), run as one
transaction in one step -- on SQLite on a connection of its own, on the
event loop when the write lock is free, committed without waiting for the
disk (that module says what that means for a power loss).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.coordination import (
    Blocked,
    Canonical,
    CoordinationBlocked,
    StateRow,
    blocked_by,
    merged,
    new_row,
    spent,
)
from gateway.delegation.permits import Admitted
from gateway.storage.statements import Sql, statement_runner
from gateway.storage.tables import coordination_state as table
from policies.coordination import Keyed, Plan

T = TypeVar("T")


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._run = statement_runner(engine)

    async def take(self, admitted: Admitted, now: float) -> None:
        try:
            await self._run(_take, admitted, now)
        except asyncio.CancelledError:
            # The caller went away; the step may still commit. Its leases go
            # back right after it (one thread or connection: in that order).
            if admitted.plan.leases:
                self._run.soon(_drop_leases, admitted.holder)
            raise

    async def give_back(
        self, admitted: Admitted, succeeded: bool, now: float
    ) -> tuple[list[Keyed], list[Keyed]]:
        return await self._run(_give_back, admitted, succeeded, now)

    async def blocking(self, plan: Plan, now: float) -> list[Blocked]:
        return await self._run.read(_blocking_all, plan, now)

    async def rows(self, entity: str | None, key: str | None, now: float) -> list[StateRow]:
        return await self._run.read(_rows, entity, key, now)

    async def remove(self, rule: str, key: str, now: float) -> list[StateRow]:
        return await self._run(_remove, rule, key, now)

    async def purge(self, now: float) -> int:
        return await self._run(_purge, now)

    async def rekey(self, canonical: Canonical, now: float) -> int:
        return await self._run(_rekey, canonical, now)

    async def aclose(self) -> None:
        await self._run.aclose()


# -- statements ---------------------------------------------------------------
# The same text is valid on SQLite and PostgreSQL ("key" and "until" quoted).
# Only the table's own column names go into it; every value is bound.

_PRIMARY = ("rule", "key", "slot")
_COLUMNS = tuple(c.name for c in table.columns)
_LIST = ", ".join(f'"{name}"' for name in _COLUMNS)
_SELECT = f"SELECT {_LIST} FROM coordination_state"  # noqa: S608
_ROW = f'{_SELECT} WHERE rule = :rule AND "key" = :key AND slot = :slot'
_BINDS = ", ".join(f":{name}" for name in _COLUMNS)
_UPSERT = (
    f"INSERT INTO coordination_state ({_LIST}) VALUES ({_BINDS}) "  # noqa: S608
    'ON CONFLICT (rule, "key", slot) DO UPDATE SET '
)
_EVERY_FIELD = ", ".join(f'"{n}" = excluded."{n}"' for n in _COLUMNS if n not in _PRIMARY)
# Spent, or reserved for this very call (`Coordination.reserve`).
_TAKE_LEASE = (
    f'{_UPSERT}{_EVERY_FIELD} WHERE coordination_state."until" <= :opened_at '
    "OR coordination_state.holder = :holder RETURNING rule"
)
_TAKE_UNIT = (
    f"{_UPSERT}count = coordination_state.count + 1 "
    "WHERE coordination_state.count < :limit RETURNING rule"
)
_PUT = f"{_UPSERT}{_EVERY_FIELD}"
_CLOSE = (
    'DELETE FROM coordination_state WHERE rule = :rule AND "key" = :key AND slot = 0 '
    'RETURNING "until"'
)
_DROP_LEASES = "DELETE FROM coordination_state WHERE holder = :holder AND kind = 'exclusive'"
_REMOVE = 'DELETE FROM coordination_state WHERE rule = :rule AND "key" = :key'
_PURGE = 'DELETE FROM coordination_state WHERE "until" < :now'


@functools.cache
def _live_of(count: int) -> str:
    """The live slot-0 rows of ``count`` (rule, key) pairs."""
    pairs = " OR ".join(f'(rule = :rule{i} AND "key" = :key{i})' for i in range(count))
    return f'{_SELECT} WHERE slot = 0 AND "until" > :now AND ({pairs})'


def _state(found: Sequence[Any]) -> StateRow:
    return StateRow(**dict(zip(_COLUMNS, found, strict=True)))


# -- the operations, each one transaction ------------------------------------


def _take(sql: Sql, admitted: Admitted, now: float) -> None:
    plan = admitted.plan
    found = _blocking(sql, plan.blocked_by, now)
    if found is not None:
        raise CoordinationBlocked(found)
    for keyed in plan.leases:
        if not _take_row(sql, new_row(keyed, admitted, now, 0, now + keyed.seconds), keyed):
            row = _row(sql, keyed, 0)
            raise CoordinationBlocked(
                blocked_by(keyed, row, now)
                if row
                else Blocked(keyed, now + 1, "another call is in flight", now)
            )
    for keyed in plan.budgets:
        slot = int(now // keyed.seconds)
        row = new_row(keyed, admitted, now, slot, (slot + 1) * keyed.seconds)
        if not _take_row(sql, row, keyed):
            raise CoordinationBlocked(spent(keyed, now))


def _drop_leases(sql: Sql, holder: str) -> None:
    sql.run(_DROP_LEASES, {"holder": holder})


def _give_back(
    sql: Sql, admitted: Admitted, succeeded: bool, now: float
) -> tuple[list[Keyed], list[Keyed]]:
    plan, closed = admitted.plan, []
    if plan.leases:
        _drop_leases(sql, admitted.holder)
    if not succeeded:
        return [], []
    for keyed in plan.closes:
        ended = sql.rows(_CLOSE, {"rule": keyed.rule, "key": keyed.key})
        if any(until > now for (until,) in ended):
            closed.append(keyed)
    for keyed in (*plan.opens, *plan.cools):
        # Open a hold or start a cooldown (again: from now).
        sql.run(_PUT, vars(new_row(keyed, admitted, now, 0, now + keyed.seconds)))
    return list(plan.opens), closed


def _blocking_all(sql: Sql, plan: Plan, now: float) -> list[Blocked]:
    found: list[Blocked] = []
    for keyed in (*plan.blocked_by, *plan.leases):
        row = _row(sql, keyed, 0)
        if row is not None and row.until > now:
            found.append(blocked_by(keyed, row, now))
    for keyed in plan.budgets:
        row = _row(sql, keyed, int(now // keyed.seconds))
        if row is not None and row.count >= keyed.limit:
            found.append(spent(keyed, now))
    return found


def _rows(sql: Sql, entity: str | None, key: str | None, now: float) -> list[StateRow]:
    where = ['"until" > :now']
    params: dict[str, Any] = {"now": now}
    if entity is not None:
        where.append("entity = :entity")
        params["entity"] = entity
    if key is not None:
        where.append('"key" = :key')
        params["key"] = key
    query = f'{_SELECT} WHERE {" AND ".join(where)} ORDER BY entity, "key", rule LIMIT 1000'
    return [_state(found) for found in sql.rows(query, params)]


def _remove(sql: Sql, rule: str, key: str, now: float) -> list[StateRow]:
    params = {"rule": rule, "key": key}
    rows = [_state(r) for r in sql.rows(f'{_SELECT} WHERE rule = :rule AND "key" = :key', params)]
    sql.run(_REMOVE, params)
    return [row for row in rows if row.until > now]


def _purge(sql: Sql, now: float) -> int:
    return sql.run(_PURGE, {"now": now})


_IN_FORCE = f'{_SELECT} WHERE "until" > :now'
_DELETE_ROW = 'DELETE FROM coordination_state WHERE rule = :rule AND "key" = :key AND slot = :slot'


def _rekey(sql: Sql, canonical: Canonical, now: float) -> int:
    moved = 0
    for row in map(_state, sql.rows(_IN_FORCE, {"now": now})):
        key = canonical(row.entity, row.key)
        if key == row.key:
            continue
        # Deleted first: another replica re-keying at the same time waits for
        # this transaction, then deletes nothing and leaves the row alone.
        if not sql.run(_DELETE_ROW, {"rule": row.rule, "key": row.key, "slot": row.slot}):
            continue
        found = sql.rows(_ROW, {"rule": row.rule, "key": key, "slot": row.slot})
        there = _state(found[0]) if found else None
        kept = replace(row, key=key) if there is None or there.until <= now else there
        sql.run(_PUT, vars(merged(kept, row) if kept is there else kept))
        moved += 1
    return moved


def _blocking(sql: Sql, rules: Sequence[Keyed], now: float) -> Blocked | None:
    if not rules:
        return None
    params: dict[str, Any] = {"now": now}
    for i, keyed in enumerate(rules):
        params[f"rule{i}"], params[f"key{i}"] = keyed.rule, keyed.key
    live = {(r.rule, r.key): r for r in map(_state, sql.rows(_live_of(len(rules)), params))}
    # The first of ``rules`` in force (`plan` puts those that refuse first).
    for keyed in rules:
        row = live.get((keyed.rule, keyed.key))
        if row is not None:
            return blocked_by(keyed, row, now)
    return None


def _row(sql: Sql, keyed: Keyed, slot: int) -> StateRow | None:
    found = sql.rows(_ROW, {"rule": keyed.rule, "key": keyed.key, "slot": slot})
    return _state(found[0]) if found else None


def _take_row(sql: Sql, row: StateRow, keyed: Keyed) -> bool:
    """A lease (free or spent) or a budget unit (the count below the
    limit): True when this call got it."""
    values = vars(row)
    if keyed.kind == "budget":
        return bool(sql.rows(_TAKE_UNIT, {**values, "limit": keyed.limit}))
    return bool(sql.rows(_TAKE_LEASE, values))
