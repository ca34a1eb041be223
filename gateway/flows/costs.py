"""What a step costs, and whether a user's budget for a flow is spent
(`policies.prices`).

A call step that completed is priced as it ends, at the prices in force then:
``per_call`` plus the tokens its upstream reported times their prices, kept
with its usage (``cost``, ``currency``), so later price changes never
re-price a run. A failed or refused call costs nothing here (an upstream
that bills for failures is not modelled).

A budget (per user, per flow, per period) is checked when a run starts --
spent, the run is refused (`BudgetSpent`) -- and before each call step of a
run going on: spent, the step fails, and with it the run, saying so. What a
run costs is counted in the period the run started in. "Spent" means the
sum reached the budget: a user at exactly the limit is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.flows.runtime import FlowRuntime
from policies.prices import Budget


class BudgetSpent(Exception):
    """The user's budget for the flow is spent."""

    def __init__(self, flow_id: str, budget: Budget, spent: Any, currency: str) -> None:
        period = {"day": "today (UTC)", "month": "this month (UTC)", "total": "in all"}
        super().__init__(
            f"the budget for flow {flow_id} is spent: {spent} {currency} of "
            f"{budget.per_user} {currency} per user {period[budget.period]}"
        )


def priced(rt: FlowRuntime, target: str, outcome: dict[str, Any]) -> dict[str, Any] | None:
    """The step's usage to record: as reported, with its cost when the
    policy prices ``target`` (an agent's id, or an MCP tool's name, else its
    server's) and the call completed."""
    usage: dict[str, Any] | None = outcome.get("usage")
    if outcome.get("state") != "completed":
        return usage
    prices = rt.delegations.policy.current.prices
    if not prices.targets:
        return usage
    known = rt.federation().known_tool(target) if "__" in target else None
    price = prices.price(target, known.server_id if known is not None else None)
    if price is None:
        return usage
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


async def check_budget(rt: FlowRuntime, flow_id: str, subject: str, issuer: str) -> None:
    """Raise `BudgetSpent` when the user's runs of ``flow_id`` cost their budget."""
    prices = rt.delegations.policy.current.prices
    budget = prices.budget(flow_id)
    if budget is None:
        return
    since = budget.since(datetime.now(UTC))
    oldest = timedelta(seconds=rt.settings.grant_max_seconds)
    spent = await rt.store.spending.spent(flow_id, (subject, issuer), since, oldest)
    if spent >= budget.per_user:
        raise BudgetSpent(flow_id, budget, spent, prices.currency)
