"""One namespace for the tools `/mcp` offers: a name means exactly one target.

Three sources offer tools: the federation (upstream servers' tools, named and
stored when first listed), the agents' skills (``{agent}__{skill}``), and the
gateway itself (``switchboard__approval_status``; flows, later, under
``switchboard__flow...``: `ToolNamespace.claim`). `tools/list` (`listing`)
and `tools/call` (`resolve`) ask this one module, which applies one rule
(`registry.mcp_names`) -- never "whichever source is asked first":

* ``switchboard__...`` is the gateway's; neither a federated tool nor a
  skill holds such a name.
* A federated tool stored under a name that is not its own (a row written
  before names were checked: `FederatedTool.withheld`) holds nothing.
* ``{id}__...`` belongs to the one target with that id. Agents and MCP
  servers share one id space (given out under one lock, `registry.name_holders`),
  so a server's own ``{server}__{tool}`` is no skill's.
* Any other name a federated tool and a skill both hold (a hashed name cut
  before its separator, which registration refuses to give out twice) is
  refused to both: listed by neither, and a call is an error saying so.

Registration, approval and refresh keep names from colliding in the first
place (`registry.mcp_sync`, `registry.name_holders`); this is what a call
and a listing see of whatever the store holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mcp_types as types

from gateway.delegation.pipeline import Caller
from gateway.federation.federated_tools import FederatedTool, ToolNotFound
from gateway.federation.federation import McpFederation
from gateway.mcp.agent_tools import AgentSkillTools, SkillTool
from gateway.mcp.per_caller import PerCaller
from gateway.mcp.sets import current_set
from gateway.mcp.tool_decisions import ToolDecisions
from registry.mcp_names import cut_hashed, gateways, owner_of
from registry.mcp_sets import McpSet


class NameContested(Exception):
    """Two sources hold one name; a call to it is refused (never guessed)."""

    def __init__(self, name: str, tool: FederatedTool, skill: SkillTool) -> None:
        super().__init__(
            f"{name} is held by MCP server {tool.server_id}'s tool {tool.upstream_name!r} "
            f"and by agent {skill.agent_id}'s skill {skill.skill_id!r}; it is refused "
            "until an admin removes one"
        )


@dataclass
class Listing:
    """What `tools/list` offers one caller (the gateway's own tools aside)."""

    federated: list[FederatedTool]
    skills: list[SkillTool]
    # The whole `tools/list` answer the front worked out from this listing,
    # kept with it: every page of one listing asks for it again.
    offered: list[types.Tool] | None = field(default=None, repr=False, compare=False)

    # `offered` within each virtual server's set asked for, by set (and the
    # set's version: an edited set is worked out again).
    by_set: dict[tuple[str, object], list[types.Tool]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def tools(self) -> list[types.Tool]:
        return [t.as_mcp_tool() for t in self.federated] + [s.tool for s in self.skills]

    def within(self, chosen: McpSet, keep: frozenset[str] = frozenset()) -> list[types.Tool]:
        """`offered` (worked out) within a virtual server's set, in its order;
        ``keep``: the gateway's own tools every set offers (a held call's status)."""
        assert self.offered is not None
        key = (chosen.name, chosen.updated_at)
        kept = self.by_set.get(key)
        if kept is None:
            taken = {t.name for t in self.federated if in_set(chosen, t)}
            taken |= {s.name for s in self.skills if in_set(chosen, s)}
            # A tool taken by name from a server the set does not take: the
            # set has none of that server's resources, so no app to open.
            appless = {t.name for t in self.federated if t.server_id not in chosen.select.servers}
            kept = [
                without_app(t) if t.name in appless else t
                for t in self.offered
                if t.name in taken or t.name in keep
            ]
            self.by_set = {key: kept, **dict(list(self.by_set.items())[:15])}
        return kept


def without_app(tool: types.Tool) -> types.Tool:
    """``tool`` without the MCP App it would open (`registry.mcp_tools.app_pin`)."""
    meta = tool.meta
    if not meta or not ({"ui", "ui/resourceUri"} & set(meta)):
        return tool
    rest = {k: v for k, v in meta.items() if k not in ("ui", "ui/resourceUri")}
    return tool.model_copy(update={"meta": rest or None})


_NO_SKILLS: tuple[tuple[SkillTool, ...], frozenset[str]] = ((), frozenset())


class ToolNamespace:
    def __init__(
        self,
        federation: Callable[[], McpFederation],
        skills: Callable[[], AgentSkillTools | None],
    ) -> None:
        self._federation = federation
        self._skills = skills
        # The gateway's own tools, by name: each starts with switchboard__.
        self.gateway: dict[str, types.Tool] = {}
        self._listings: PerCaller[Listing] = PerCaller()
        self.decisions = ToolDecisions(federation)

    def claim(self, tool: types.Tool) -> None:
        """Hold a name for one of the gateway's own tools (the hook for flows)."""
        if not gateways(tool.name):
            raise ValueError(f"the gateway's own tools are named switchboard__...: {tool.name}")
        self.gateway[tool.name] = tool

    async def listing(self, caller: Caller, *, continuing: bool = False) -> Listing:
        """The tools ``caller`` may call, each under a name `resolve` answers
        with that very tool; the policy decision is the one a call runs. The
        same `Listing` object while the federation's tools, the agents' skill
        tools and the policy are the same objects (`gateway.mcp.per_caller`):
        each page of a `tools/list` asks again (``continuing``: a page after the
        first, `AgentSkillTools.catalog`)."""
        federation = self._federation()
        agent_tools = self._skills()
        skills, skill_names = (
            await agent_tools.catalog(caller, continuing=continuing) if agent_tools else _NO_SKILLS
        )
        snapshot = await federation.snapshot()
        shared = (snapshot, federation.delegations.policy.current)
        kept = self._listings.get(caller, shared, (skills,))
        if kept is not None:
            return kept
        # All from the one snapshot the listing is kept under.
        holding = {t.name for t in snapshot.values() if t.withheld is None}
        decided = self.decisions.of(caller)  # each decision kept (`ToolDecisions`)
        offered = await federation.tools(caller, snapshot=snapshot, decided=decided)
        listing = Listing(
            federated=[t for t in offered if not _contested(t, skill_names)],
            # A name a federated tool holds is that tool's (or refused to both).
            skills=[s for s in skills if s.name not in holding and not gateways(s.name)],
        )
        return self._listings.put(caller, shared, (skills,), listing)

    async def resolve(self, name: str) -> FederatedTool | SkillTool:
        """The one target ``name`` means. Raises `ToolNotFound` or `NameContested`."""
        if gateways(name):
            raise ToolNotFound(name)  # the gateway's own are answered before this
        try:
            tool: FederatedTool | None = await self._federation().tool(name)
        except ToolNotFound:
            tool = None
        if tool is not None and tool.withheld is not None:
            tool = None
        if tool is not None and owner_of(name) == tool.server_id:
            return tool  # {server}__...: no agent has the server's id
        agent_tools = self._skills()
        skill = None
        if agent_tools is not None and (owner_of(name) is not None or cut_hashed(name)):
            skill = await agent_tools.find(name)
        if tool is not None and skill is not None:
            raise NameContested(name, tool, skill)
        found = tool or skill
        if found is None:
            raise ToolNotFound(name)
        return found

    def known(self, name: str) -> FederatedTool | None:
        """The federated tool ``name`` as last read, without I/O, if the name is
        its own (for synchronous SDK hooks such as input-schema lookups) and,
        on a virtual server, the set takes it: outside the set a tool is as
        unknown as any name, and a check of its `Mcp-Param` headers against
        its schema would tell that it exists."""
        tool = self._federation().known_tool(name)
        if tool is None or tool.withheld is not None:
            return None
        chosen = current_set.get()
        if chosen is not None and not chosen.select.takes_tool(name, server=tool.server_id):
            return None
        return tool


def _contested(tool: FederatedTool, skill_names: frozenset[str]) -> bool:
    """What `resolve` finds for the tool's name: a skill besides it."""
    return owner_of(tool.name) != tool.server_id and tool.name in skill_names


def in_set(chosen: McpSet, target: FederatedTool | SkillTool) -> bool:
    """Whether a virtual server's set takes this tool (`registry.mcp_sets`)."""
    if isinstance(target, SkillTool):
        return chosen.select.takes_tool(target.name, agent=target.agent_id, tags=target.tags)
    return chosen.select.takes_tool(target.name, server=target.server_id)
