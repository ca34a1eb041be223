"""A user's budget for a flow, reserved before each call rather than only
checked (`gateway.flows.costs`): the statements, each operation one
transaction on the lean path (`gateway.storage.statements`).

What counts against a budget ("committed") is what the user's runs of the
flow cost in steps that ended in the period, plus what their calls in flight
reserved (`flow_reservations`: a call step's ``per_call`` price, the most of
its call's and its fallback's). A call is made only when its reservation
fits: the committed sum below the limit, and still within it with the
reservation added. Two reservations for one user and flow -- two runs
started together, a map's items, two replicas -- are made one after the
other: each first writes the user's row in `flow_budget_locks` (an upsert:
on PostgreSQL the row stays locked until the transaction commits, and the
next one's statements, read committed, see what it wrote; on SQLite the
runner's ``BEGIN IMMEDIATE`` holds the file's write lock), then reads and
inserts.

A reservation goes when its step ends -- after the step's record took its
cost, so for an instant both count, never neither -- or when its run ends
(in the transaction that ends it). One left by a crash that no run resumes
lapses at its ``expires_at``, the run's grant's end (no call is made past
it); lapsed rows are ignored and removed by the next reservation for that
user and flow. A step that runs again after a crash finds its own
reservation and keeps it (the key is the run and the step).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.flows import step_records
from gateway.flows.spending import usage_of
from gateway.storage.flow_tables import flow_budget_locks, flow_reservations, flow_steps
from gateway.storage.statements import Sql, StatementRunner
from gateway.storage.typed_statement import Statement


@dataclass(frozen=True)
class Hold:
    """What one call step reserves."""

    run_id: str
    step_id: str
    flow_id: str
    owner: tuple[str, str]
    amount: Decimal
    expires_at: datetime


@dataclass(frozen=True)
class Period:
    """Which spending counts: steps that ended since ``since`` (None: all),
    of runs started since ``started`` (None: all; an index range)."""

    since: datetime | None
    started: datetime | None


_LOCK = Statement(
    flow_budget_locks,
    "INSERT INTO flow_budget_locks (flow_id, owner_subject, owner_issuer, locked_at)"
    " VALUES (:flow_id, :owner_subject, :owner_issuer, :locked_at)"
    " ON CONFLICT (flow_id, owner_subject, owner_issuer)"
    " DO UPDATE SET locked_at = excluded.locked_at",
)
_OWNER = "flow_id = :flow_id AND owner_subject = :owner_subject AND owner_issuer = :owner_issuer"
_LAPSED = Statement(
    flow_reservations,
    f"DELETE FROM flow_reservations WHERE {_OWNER} AND expires_at <= :expires_at",  # noqa: S608
)
_RESERVED = Statement(
    flow_reservations,
    f"SELECT amount FROM flow_reservations WHERE {_OWNER} AND expires_at > :expires_at",  # noqa: S608
)
_OWN = Statement(
    flow_reservations,
    "SELECT amount FROM flow_reservations WHERE run_id = :run_id AND step_id = :step_id",
)
_INSERT = Statement(
    flow_reservations,
    "INSERT INTO flow_reservations"
    " (run_id, step_id, flow_id, owner_subject, owner_issuer, amount, expires_at)"
    " VALUES (:run_id, :step_id, :flow_id, :owner_subject, :owner_issuer, :amount, :expires_at)",
)
_RELEASE = Statement(
    flow_reservations,
    "DELETE FROM flow_reservations WHERE run_id = :run_id AND step_id = :step_id",
)
_RELEASE_RUN = Statement(flow_reservations, "DELETE FROM flow_reservations WHERE run_id = :run_id")
_SPENT = (
    "SELECT flow_steps.usage FROM flow_steps"
    " JOIN flow_runs ON flow_runs.id = flow_steps.run_id"
    " WHERE flow_runs.flow_id = :flow_id AND flow_runs.owner_subject = :owner_subject"
    " AND flow_runs.owner_issuer = :owner_issuer AND flow_steps.usage IS NOT NULL"
)
_SPENT_ALL = Statement(flow_steps, _SPENT)
_SPENT_SINCE = Statement(
    flow_steps,
    f"{_SPENT} AND flow_runs.created_at >= :created_at AND flow_steps.finished_at >= :finished_at",
)


def _owner(flow_id: str, owner: tuple[str, str]) -> dict[str, str]:
    return {"flow_id": flow_id, "owner_subject": owner[0], "owner_issuer": owner[1]}


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # not written by this module
        return Decimal(0)


def committed(
    sql: Sql, flow_id: str, owner: tuple[str, str], period: Period, now: datetime
) -> Decimal:
    """What counts against ``owner``'s budget for the flow: spent in the
    period, plus reserved by calls in flight."""
    who = _owner(flow_id, owner)
    if period.since is None or period.started is None:
        rows = sql.typed(_SPENT_ALL, who)
    else:
        rows = sql.typed(
            _SPENT_SINCE, {**who, "created_at": period.started, "finished_at": period.since}
        )
    spent = Decimal(0)
    for row in rows:
        usage = usage_of(row["usage"])
        if usage is not None and usage.cost is not None:
            spent += usage.cost
    reserved = sql.typed(_RESERVED, {**who, "expires_at": now})
    return spent + sum((_decimal(r["amount"]) for r in reserved), Decimal(0))


def reserve(sql: Sql, hold: Hold, limit: Decimal, period: Period, now: datetime) -> Decimal | None:
    """Reserve ``hold`` if it fits under ``limit``: None when reserved (or
    reserved already: the step runs again), else what counts already."""
    who = _owner(hold.flow_id, hold.owner)
    sql.typed(_LOCK, {**who, "locked_at": now})  # first: the others wait here
    sql.typed(_LAPSED, {**who, "expires_at": now})
    if sql.typed(_OWN, {"run_id": hold.run_id, "step_id": hold.step_id}):
        return None
    counted = committed(sql, hold.flow_id, hold.owner, period, now)
    if counted >= limit or counted + hold.amount > limit:
        return counted
    sql.typed(
        _INSERT,
        {
            **who,
            "run_id": hold.run_id,
            "step_id": hold.step_id,
            "amount": str(hold.amount),
            "expires_at": hold.expires_at,
        },
    )
    return None


def release(sql: Sql, run_id: str, step_id: str) -> None:
    sql.typed(_RELEASE, {"run_id": run_id, "step_id": step_id})


def release_run(sql: Sql, run_id: str) -> None:
    sql.typed(_RELEASE_RUN, {"run_id": run_id})


def end_run(sql: Sql, run_id: str, values: dict[str, Any]) -> bool:
    """The run ended (`FlowStore.set_run`), and with it what its calls still
    had reserved."""
    changed = step_records.set_run(sql, run_id, values)
    release_run(sql, run_id)
    return changed


class Reservations:
    """The operations above, on the flow store's statement runner."""

    def __init__(self, run: StatementRunner) -> None:
        self._run = run

    async def reserve(self, hold: Hold, limit: Decimal, period: Period) -> Decimal | None:
        """``hold`` reserved if it fits under ``limit`` (None), else what counts already."""
        return await self._run(reserve, hold, limit, period, datetime.now(UTC))

    async def committed(self, flow_id: str, owner: tuple[str, str], period: Period) -> Decimal:
        """What counts against ``owner``'s budget for the flow: spent and reserved."""
        return await self._run.read(committed, flow_id, owner, period, datetime.now(UTC))

    async def release(self, run_id: str, step_id: str) -> None:
        await self._run(release, run_id, step_id)
