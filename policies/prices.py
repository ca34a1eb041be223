"""What calls cost, and how much a user may spend on a flow: the policy's
``prices``. Pure: the gateway records a flow step's cost as the step ends and
reserves each call's ``per_call`` against the budget before it is sent
(`gateway.flows.costs`).

```yaml
prices:
  currency: EUR                 # a label, shown with every figure
  targets:                      # an agent's id, an MCP tool's name as callers
    sales:                      # see it (server__tool), or an MCP server's id
      per_call: "0.002"         # (every tool it has)
      per_input_token: "0.000003"
      per_output_token: "0.000015"
    inventory__check_stock: {per_call: "0.0005"}
  budgets:
    - flow: ship-flow           # or "*": every flow, each counted on its own
      per_user: "0.05"          # what one user's runs of it may cost ...
      period: day               # ... per UTC day (or month; or total)
```

Prices are decimals (strings or numbers, at most 10^6, not negative), kept
exact: a step's cost is ``per_call`` plus its reported tokens times their
prices, counted for a call that completed. A budget spent refuses a new run
of the flow by that user, and stops one going on at its next call step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Money = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=20, decimal_places=12)]
Period = Literal["day", "month", "total"]


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_call: Money = Decimal(0)
    per_input_token: Money = Decimal(0)
    per_output_token: Money = Decimal(0)

    def of(self, input_tokens: int = 0, output_tokens: int = 0) -> Decimal:
        return (
            self.per_call
            + self.per_input_token * input_tokens
            + self.per_output_token * output_tokens
        )


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
    per_user: Money
    period: Period = "month"

    def since(self, now: datetime) -> datetime | None:
        """When the period ``now`` falls in began (None: a budget for all time)."""
        now = now.astimezone(UTC)
        if self.period == "day":
            return now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "month":
            return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return None


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field("USD", pattern=r"^[A-Za-z0-9$€£¥._-]{1,12}$")
    targets: dict[Annotated[str, Field(max_length=200)], Price] = Field(
        default_factory=dict, max_length=10_000
    )
    budgets: list[Budget] = Field(default_factory=list, max_length=1000)

    def price(self, target: str, server: str | None = None) -> Price | None:
        """The price of a call to ``target`` (an agent, or an MCP tool by its
        name, falling back to its ``server``'s)."""
        found = self.targets.get(target)
        if found is None and server is not None:
            found = self.targets.get(server)
        return found

    def budget(self, flow_id: str) -> Budget | None:
        """The flow's own budget, else the one for every flow."""
        for wanted in (flow_id, "*"):
            for budget in self.budgets:
                if budget.flow == wanted:
                    return budget
        return None
