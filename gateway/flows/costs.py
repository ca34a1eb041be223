"""What a step costs, and what a user's budget for a flow lets them spend
(`policies.prices`).

A call step that completed is priced as it ends, at the prices in force then:
``per_call`` plus the tokens its upstream reported times their prices, kept
with its usage (``cost``, ``currency``), so later price changes never
re-price a run. A failed or refused call costs nothing here (an upstream
that bills for failures is not modelled).

A budget (per user, per flow, per period) is checked when a run starts --
spent, the run is refused (`BudgetSpent`) -- and *reserved* before each call
step of a run: the step's ``per_call`` price (the most of its call's and its
fallback's) is set aside atomically, in the database every replica shares,
and only if it fits; else the step fails, and with it the run, saying so
(`gateway.flows.reservations`). The reservation goes when the step ends,
its cost recorded, or when the run ends. What the tokens of a call cost is
known only once it answered, so it is not reserved: calls in flight at once
may overshoot by that. What a run costs is counted in the period its steps
ended in. "Spent" means the sum (with what is reserved) reached the budget:
a user at exactly the limit is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.flows.reservations import Hold, Period
from gateway.flows.runtime import FlowRuntime
from policies.prices import Budget, Price


class BudgetSpent(Exception):
    """The user's budget for the flow is spent."""

    def __init__(
        self, flow_id: str, budget: Budget, spent: Any, currency: str, asked: Decimal = Decimal(0)
    ) -> None:
        period = {"day": "today (UTC)", "month": "this month (UTC)", "total": "in all"}
        said = (
            f"the budget for flow {flow_id} is spent: {spent} {currency} of "
            f"{budget.per_user} {currency} per user {period[budget.period]}"
        )
        if spent < budget.per_user:  # what is left does not cover the call
            said += f"; a call costs {asked} {currency}"
        super().__init__(said)


def priced(rt: FlowRuntime, target: str, outcome: dict[str, Any]) -> dict[str, Any] | None:
    """The step's usage to record: as reported, with its cost when the
    policy prices ``target`` (an agent's id, or an MCP tool's name, else its
    server's) and the call completed."""
    usage: dict[str, Any] | None = outcome.get("usage")
    if outcome.get("state") != "completed":
        return usage
    price = _price(rt, target)
    if price is None:
        return usage
    prices = rt.delegations.policy.current.prices
    tokens = usage or {}
    cost = price.of(int(tokens.get("input_tokens") or 0), int(tokens.get("output_tokens") or 0))
    return {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        **tokens,
        "cost": str(cost),
        "currency": prices.currency,
    }


def _price(rt: FlowRuntime, target: str) -> Price | None:
    prices = rt.delegations.policy.current.prices
    if not prices.targets:
        return None
    known = rt.federation().known_tool(target) if "__" in target else None
    return prices.price(target, known.server_id if known is not None else None)


def _period(rt: FlowRuntime, budget: Budget) -> Period:
    """The spending that counts now: steps that ended in the budget's period,
    of runs started no earlier than the longest a run goes on before it."""
    since = budget.since(datetime.now(UTC))
    if since is None:
        return Period(None, None)
    return Period(since, since - timedelta(seconds=rt.settings.grant_max_seconds))


async def check_budget(rt: FlowRuntime, flow_id: str, subject: str, issuer: str) -> None:
    """Raise `BudgetSpent` when what the user's runs of ``flow_id`` spent and
    reserved reached their budget."""
    prices = rt.delegations.policy.current.prices
    budget = prices.budget(flow_id)
    if budget is None:
        return
    counted = await rt.store.reservations.committed(flow_id, (subject, issuer), _period(rt, budget))
    if counted >= budget.per_user:
        raise BudgetSpent(flow_id, budget, counted, prices.currency)


async def reserve_budget(
    rt: FlowRuntime,
    run: dict[str, Any],
    step_id: str,
    targets: Iterable[str],
    expires_at: datetime,
) -> bool:
    """Reserve the call step's ``per_call`` price (the most of ``targets``')
    against the run's user's budget, until ``expires_at`` at the latest;
    raise `BudgetSpent` when it does not fit. False: the flow has no
    budget, nothing reserved."""
    prices = rt.delegations.policy.current.prices
    budget = prices.budget(run["flow_id"])
    if budget is None:
        return False
    found = [_price(rt, target) for target in targets]
    amount = max((p.per_call for p in found if p is not None), default=Decimal(0))
    owner = (run["owner_subject"], run["owner_issuer"])
    hold = Hold(run["id"], step_id, run["flow_id"], owner, amount, expires_at)
    counted = await rt.store.reservations.reserve(hold, budget.per_user, _period(rt, budget))
    if counted is not None:
        raise BudgetSpent(run["flow_id"], budget, counted, prices.currency, amount)
    return True
