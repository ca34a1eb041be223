"""What runs used and cost: the steps' reported usage and recorded cost,
summed per run, flow and user (`GET /flows/{id}/usage`, `GET /usage`). A
user's spending against their budget for a flow is read with what their
calls in flight reserved (`gateway.flows.reservations`).

A step's cost is recorded when it ends, at the prices in force then
(`gateway.flows.costs`), in its ``usage``; sums never re-price. Read from the
kept runs: a run past its retention no longer counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.flows.models import FlowUsage, TokenUsage, UsageReport, UserUsage
from gateway.storage.flow_tables import flow_runs, flow_steps


def summed(usages: Iterable[TokenUsage | None]) -> TokenUsage | None:
    found = [u for u in usages if u is not None]
    if not found:
        return None
    costs = [u.cost for u in found if u.cost is not None]
    currencies = {u.currency for u in found if u.currency}
    return TokenUsage(
        input_tokens=sum(u.input_tokens for u in found),
        output_tokens=sum(u.output_tokens for u in found),
        total_tokens=sum(u.total_tokens for u in found),
        cost=sum(costs, Decimal(0)) if costs else None,
        currency=(currencies.pop() if len(currencies) == 1 else "mixed") if currencies else None,
    )


def usage_of(stored: Any) -> TokenUsage | None:
    """A step's usage as recorded; None for what no usage reads as (one odd
    report must not fail every listing and sum)."""
    if not stored:
        return None
    try:
        return TokenUsage.model_validate(stored)
    except (ValidationError, RecursionError):
        return None


async def runs_usage(conn: AsyncConnection, run_ids: list[str]) -> dict[str, TokenUsage]:
    """The usage of each of ``run_ids`` that reported any, its steps' summed:
    one query for a page of runs, not one per run."""
    if not run_ids:
        return {}
    reported: dict[str, list[TokenUsage | None]] = {}
    steps = await conn.execute(
        select(flow_steps.c.run_id, flow_steps.c.usage).where(
            flow_steps.c.run_id.in_(run_ids), flow_steps.c.usage.is_not(None)
        )
    )
    for step in steps:
        reported.setdefault(step.run_id, []).append(usage_of(step.usage))
    return {run: used for run, found in reported.items() if (used := summed(found))}


class Spending:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(
        self,
        *,
        flow_id: str | None = None,
        owner: tuple[str, str] | None = None,
        since: datetime | None = None,
    ) -> list[tuple[str, str, tuple[str, str], TokenUsage]]:
        """(run, flow, owner, usage) of each step with usage; ``since``: of
        runs started since."""
        query = (
            select(
                flow_runs.c.id,
                flow_runs.c.flow_id,
                flow_runs.c.owner_subject,
                flow_runs.c.owner_issuer,
                flow_steps.c.usage,
            )
            .join(flow_steps, flow_steps.c.run_id == flow_runs.c.id)
            .where(flow_steps.c.usage.is_not(None))
        )
        if flow_id is not None:
            query = query.where(flow_runs.c.flow_id == flow_id)
        if owner is not None:
            query = query.where(
                flow_runs.c.owner_subject == owner[0], flow_runs.c.owner_issuer == owner[1]
            )
        if since is not None:
            query = query.where(flow_runs.c.created_at >= since)
        found = []
        async with self._engine.connect() as conn:
            async for row in (await conn.stream(query)).mappings():
                usage = usage_of(row["usage"])
                if usage is not None:
                    who = (row["owner_subject"], row["owner_issuer"])
                    found.append((row["id"], row["flow_id"], who, usage))
        return found

    async def flow(self, flow_id: str, *, owner: tuple[str, str] | None = None) -> FlowUsage:
        """The flow's kept runs, in all and per user."""
        rows = await self._rows(flow_id=flow_id, owner=owner)
        by_user = _per_user(rows)
        overall = summed(by_user) or TokenUsage()
        return FlowUsage(
            flow_id=flow_id,
            runs=sum(u.runs for u in by_user),
            by_user=by_user,
            **overall.model_dump(),
        )

    async def report(
        self, *, owner: tuple[str, str] | None = None, since: datetime | None = None
    ) -> UsageReport:
        """Every flow's kept runs (``owner``'s only, when given), per flow and user."""
        rows = await self._rows(owner=owner, since=since)
        flows: dict[str, list[tuple[str, str, tuple[str, str], TokenUsage]]] = {}
        for row in rows:
            flows.setdefault(row[1], []).append(row)
        by_flow = []
        for flow_id, flow_rows in sorted(flows.items()):
            users = _per_user(flow_rows)
            by_flow.append(
                FlowUsage(
                    flow_id=flow_id,
                    runs=sum(u.runs for u in users),
                    by_user=users,
                    **(summed(users) or TokenUsage()).model_dump(),
                )
            )
        by_user = _per_user(rows)
        return UsageReport(
            since=since,
            runs=sum(u.runs for u in by_user),
            by_flow=by_flow,
            by_user=by_user,
            **(summed(by_user) or TokenUsage()).model_dump(),
        )


def _per_user(rows: list[tuple[str, str, tuple[str, str], TokenUsage]]) -> list[UserUsage]:
    users: dict[tuple[str, str], tuple[set[str], list[TokenUsage]]] = {}
    for run_id, _, who, usage in rows:
        runs, usages = users.setdefault(who, (set(), []))
        runs.add(run_id)
        usages.append(usage)
    return [
        UserUsage(
            subject=subject,
            issuer=issuer,
            runs=len(runs),
            **(summed(usages) or TokenUsage()).model_dump(),
        )
        for (subject, issuer), (runs, usages) in sorted(users.items())
    ]
