"""A caller's decisions on the federated tools, kept while the policy stands.

A listing decides every tool for its caller: whether it may call it, and
whether a call would be held for a human (then the status tool is offered
too). A decision is a pure function of the caller, the policy and the tool
(`policies.policy.authorize` reads nothing else), so it is kept per caller
with the very policy object it came from, by the tool's name. A catalog
that changed (one server's thousand tools registered beside ten thousand)
then decides its new tools only, not every tool again for the first
listing or search after it (`bench.tool_catalog`'s first search).

Equal decisions are one object (`_interned`): a caller's ten thousand
entries hold a few decisions between them.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.delegation.pipeline import Caller
from gateway.federation.federated_tools import FederatedTool
from gateway.federation.federation import McpFederation
from gateway.mcp.per_caller import PerCaller
from policies.policy import Decision, Target

CALLERS_KEPT = 64  # callers whose decisions are kept (the least recently listed goes)

Decided = Callable[[FederatedTool], Decision]


class ToolDecisions:
    def __init__(self, federation: Callable[[], McpFederation]) -> None:
        self._federation = federation
        self._kept: PerCaller[dict[str, Decision]] = PerCaller(CALLERS_KEPT)
        self._interned: dict[Decision, Decision] = {}

    def of(self, caller: Caller) -> Decided:
        """``caller``'s decision on a tool, under the policy in force now
        (`McpFederation.may_call`'s: the decision a call runs)."""
        delegations = self._federation().delegations
        policy = (delegations.policy.current,)
        kept = self._kept.get(caller, policy)
        if kept is None:
            kept = self._kept.put(caller, policy, (), {})
            if len(self._interned) > 4096:
                self._interned.clear()
        interned = self._interned

        def decided(tool: FederatedTool) -> Decision:
            found = kept.get(tool.name)
            if found is None:
                fresh = delegations.decide(
                    caller, Target(tool.server_id), tool.upstream_name, "tool"
                )
                found = kept[tool.name] = interned.setdefault(fresh, fresh)
            return found

        return decided
