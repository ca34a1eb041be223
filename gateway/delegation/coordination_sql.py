"""The coordination rules' state in the gateway's database (the embedded
default, and any deployment without Redis): `coordination_state`, one row per
rule and key (slot 0), and per period for a budget (slot: the period's index
since the epoch). Rows past `until` are spent: ignored, overwritten, purged.

A call's checks and takings are one transaction. Two replicas racing for one
entity's lease or a budget's last unit meet at the row's primary key, through
an INSERT .. ON CONFLICT DO UPDATE .. WHERE that is atomic in PostgreSQL and
SQLite alike: exactly one of them gets it (RETURNING says which).

How it is run, for speed (bench/coordination.py: this is on the path of
every call a rule names). Each operation is one function over a minimal
statement runner (`Sql`), run as one transaction in one step:

* SQLite: on `sqlite3` connections of the store's own, at once on the event
  loop when the write lock is free, else in a worker thread that waits for
  it (`_SqliteConnections`) -- where aiosqlite makes a thread hop (~0.1 ms here)
  per statement, BEGIN and COMMIT; the statements are written out once, where
  building SQLAlchemy constructs and their cache keys cost more than SQLite
  running them;
* PostgreSQL: through the app's engine (`run_sync`: asyncpg, one round trip
  per statement).

Durability: on SQLite these transactions commit without waiting for the disk
(`synchronous=NORMAL` in WAL mode on the store's connections). The wait was
most of a call's cost (an fsync: 0.4-2 ms here). The gateway crashing loses
nothing; the machine losing power may forget the last fraction of a second of
changes -- a budget's last units, a hold just opened -- and never leaves the
state inconsistent. The rest of the file keeps its settings. On PostgreSQL a
commit waits as every other does: a database server crash, an outage the
gateway must survive (docs/resilience.md), loses nothing committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, TextClause, text
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
from gateway.storage.tables import coordination_state as table
from policies.coordination import Keyed, Plan

T = TypeVar("T")


class Sql(Protocol):
    """Runs one statement (named ``:binds``) in the operation's transaction."""

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[Sequence[Any]]: ...

    def run(self, statement: str, params: Mapping[str, Any]) -> int:
        """The number of rows it changed."""


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._run = _runner(engine)

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


# -- running a transaction ----------------------------------------------------


class _Runner(Protocol):
    async def __call__(self, operation: Callable[..., T], *args: Any) -> T: ...

    async def read(self, operation: Callable[..., T], *args: Any) -> T:
        """An operation that writes nothing."""

    def soon(self, operation: Callable[..., Any], *args: Any) -> None:
        """Run ``operation`` after every one already started, unawaited."""

    async def aclose(self) -> None: ...


def _runner(engine: AsyncEngine) -> _Runner:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return _SqliteConnections(url.database)
    return _AsyncEngine(engine)


class _SqliteConnections:
    """Connections of the store's own to the gateway's file.

    An operation runs at once on the event loop's connection when the file's
    write lock is free (SQLite's `BEGIN IMMEDIATE` with no wait): ~0.1 ms,
    where a hop to a thread and back costs more than that here. When another
    writer has the lock, the operation goes to one worker thread whose
    connection waits for it (busy_timeout), so the loop never waits on a lock.
    The loop's connection never checkpoints the WAL (the app's other
    connections do; one of those is a disk write the loop would wait for)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._on_loop: sqlite3.Connection | None = None
        self._on_thread: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="coordination-sqlite")

    def _loop_connection(self) -> sqlite3.Connection:
        if self._on_loop is None:
            self._on_loop = _connect(self._path, busy_seconds=0)
            self._on_loop.execute("PRAGMA wal_autocheckpoint=0")
        return self._on_loop

    async def __call__(self, operation: Callable[..., T], *args: Any) -> T:
        on_loop = self._loop_connection()
        try:
            on_loop.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # locked: wait for it off the loop
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._waiting, operation, args)
        return _in_transaction(on_loop, operation, args)

    async def read(self, operation: Callable[..., T], *args: Any) -> T:
        # In WAL mode a reader never waits for a writer: always on the loop.
        on_loop = self._loop_connection()
        on_loop.execute("BEGIN")
        return _in_transaction(on_loop, operation, args)

    def soon(self, operation: Callable[..., Any], *args: Any) -> None:
        self._thread.submit(self._waiting, operation, args)

    def _waiting(self, operation: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._on_thread is None:
            self._on_thread = _connect(self._path, busy_seconds=15)
        # The write lock taken at BEGIN, waiting for it (busy_timeout): a
        # deferred transaction that reads and then writes gets SQLITE_BUSY at
        # once when another process wrote in between, with no wait.
        self._on_thread.execute("BEGIN IMMEDIATE")
        return _in_transaction(self._on_thread, operation, args)

    def _close_thread(self) -> None:
        if self._on_thread is not None:
            self._on_thread.close()

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_thread)
        self._thread.shutdown(wait=False)
        if self._on_loop is not None:
            self._on_loop.close()
            self._on_loop = None


def _connect(path: str, busy_seconds: int) -> sqlite3.Connection:
    # isolation_level None: no transactions of the driver's own (BEGIN
    # IMMEDIATE, by the caller); check_same_thread off: opened by the thread
    # that uses it, but closed by the store.
    connection = sqlite3.connect(
        path, timeout=busy_seconds, isolation_level=None, check_same_thread=False
    )
    if busy_seconds:
        # The app's engine made the file WAL already (a setting of the file);
        # said again where waiting for a lock is allowed.
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={busy_seconds * 1000}")
    connection.execute("PRAGMA synchronous=NORMAL")  # see the module's doc
    return connection


def _in_transaction(
    connection: sqlite3.Connection, operation: Callable[..., T], args: tuple[Any, ...]
) -> T:
    """``operation`` in the transaction just begun: committed, or rolled back
    when it raises."""
    try:
        result = operation(_Sqlite3(connection), *args)
        connection.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back by itself (a full disk); a COMMIT that
        # failed leaves it open, and the connection's next BEGIN would fail.
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise
    return result


class _Sqlite3:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        return self._connection.execute(statement, params).fetchall()

    def run(self, statement: str, params: Mapping[str, Any]) -> int:
        return self._connection.execute(statement, params).rowcount


class _AsyncEngine:
    """PostgreSQL (and an in-memory SQLite database, which a connection of
    the store's own would not see): the app's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: set[asyncio.Task[Any]] = set()

    async def __call__(self, operation: Callable[..., T], *args: Any) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(lambda sync: operation(_Alchemy(sync), *args))

    async def read(self, operation: Callable[..., T], *args: Any) -> T:
        return await self(operation, *args)

    def soon(self, operation: Callable[..., Any], *args: Any) -> None:
        task = asyncio.get_running_loop().create_task(self(operation, *args))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


@functools.cache
def _text(statement: str) -> TextClause:
    return text(statement)


class _Alchemy:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def rows(self, statement: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        return list(self._connection.execute(_text(statement), dict(params)).all())

    def run(self, statement: str, params: Mapping[str, Any]) -> int:
        return int(self._connection.execute(_text(statement), dict(params)).rowcount or 0)
