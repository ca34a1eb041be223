"""Who may open an MCP App (a `ui://` resource): the decision on the tools
that open it, as well as the resource's own (docs/mcp.md, "MCP Apps").

An app that a tool of its server opens (`_meta.ui.resourceUri`, or the flat
`ui/resourceUri`) is listed and read only by a caller who may call one of
those tools -- by `McpFederation.may_call`, the decision `tools/list` and
`tools/call` run -- unless the policy has a rule naming the resource itself
(``agents.{server or *}.resources["ui://..."]``): that rule then decides
alone, through the resource's own decision (`McpOfferings.may_read`). An app
no tool opens is a resource like any other.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from gateway.delegation.decision_records import decision_event
from gateway.delegation.pipeline import Caller, DelegationDenied
from gateway.federation.federated_tools import AUDIT_EVENT, FederatedTool
from gateway.federation.federation import McpFederation
from policies.policy import Decision, Denial, Target
from registry.mcp_offerings import apps_opened

# The tools that open each app, by (server id, the server's own `ui://` URI).
Openers = Mapping[tuple[str, str], list[FederatedTool]]


class AppRights:
    def __init__(self, federation: McpFederation) -> None:
        self.federation = federation

    async def openers(self) -> Openers:
        """The tools that open each app; quarantined ones too (they open it
        for no one, as they are called by no one)."""
        return _openers(await self.federation.tools(include_uncallable=True))

    def known_openers(self) -> Openers:
        """`openers` as of the tools last read, without I/O: for a notice that
        a resource changed, never for a read."""
        return _openers(self.federation.known_tools())

    def refusal(
        self, caller: Caller, server_id: str, upstream_uri: str, action: str, openers: Openers
    ) -> Decision | None:
        """Why ``caller`` may not open the app (a denial), or None: the
        resource is no app a tool of its server opens, the policy names the
        resource itself (``action``, the policy's name for the read), or the
        caller may call one of the tools that open it."""
        tools = openers.get((server_id, upstream_uri))
        if not tools or self._named_itself(server_id, action):
            return None
        if any(tool.callable and self.federation.may_call(caller, tool) for tool in tools):
            return None
        first = self.federation.delegations.decide(
            caller, Target(server_id), tools[0].upstream_name, "tool"
        )
        names = ", ".join(sorted(tool.name for tool in tools))
        own = () if first.allowed else first.reasons
        return Decision(
            allowed=False,
            granted=frozenset(),
            approval_required=False,
            reasons=(f"{upstream_uri} is the app of {names}, which this caller may not call", *own),
            denial=(None if first.allowed else first.denial) or Denial.POLICY,
            depth=first.depth,
            rules=first.rules,
        )

    async def refuse(
        self, caller: Caller, server_id: str, upstream_uri: str, action: str, trace_id: str
    ) -> None:
        """Raise `DelegationDenied`, audited as the policy's refusals are,
        when ``caller`` may not open the app (`refusal`)."""
        started = time.perf_counter()
        refused = self.refusal(caller, server_id, upstream_uri, action, await self.openers())
        if refused is None:
            return
        await self.federation.delegations.record_event(
            decision_event(AUDIT_EVENT, trace_id, caller, server_id, action, None, refused, started)
        )
        raise DelegationDenied(server_id, refused)

    def _named_itself(self, server_id: str, action: str) -> bool:
        policy = self.federation.delegations.policy.current
        agents = (policy.agents.get(server_id), policy.agents.get("*"))
        return any(action in agent.resources for agent in agents if agent is not None)


def _openers(tools: Iterable[FederatedTool]) -> Openers:
    found: dict[tuple[str, str], list[FederatedTool]] = {}
    for tool in tools:
        for uri in apps_opened(tool.definition.get("_meta")):
            found.setdefault((tool.server_id, uri), []).append(tool)
    return found
