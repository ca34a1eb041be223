"""Every registered A2A agent's skills, as tools of the gateway's MCP server.

A skill is offered as the tool ``{agent}__{skill}`` (the federation's naming
rule, `registry.mcp_names.skill_tool_name`; which source a name on /mcp
belongs to is `gateway.mcp.namespace`'s to say). Listing asks the same
question a call asks (`Delegations.decide` on the agent's card, for that
skill): a user sees exactly the skills they may delegate to.

A call is an A2A delegation through the A2A front door's own handler
(`AgentHandler`): the user's minted token, ownership checks, task records and
the audit record are those of any A2A call (event ``a2a.SendMessage``, as
`tests/e2e/test_failures_audited.py` reads it back).
Arguments: ``message`` (text) and/or ``data`` (an object), and to continue a
task that asked for input, its ``taskId`` (and ``contextId``) -- with the tool
of the skill the task was started for: an agent continues a task's own skill,
so another skill's tool is refused (an error result, audited, nothing sent).
The answer: text parts as text, data parts as `structuredContent` (and as JSON text),
URL parts as resource links, raw parts as embedded blobs; a status update
while the task runs is a progress notification. A task that ends in
``input_required`` or ``auth_required`` is not an error: its result says
so, with the ``taskId`` to continue with.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    Message,
    Part,
    Role,
    SendMessageRequest,
)
from a2a.utils.errors import InvalidParamsError
from google.protobuf.struct_pb2 import Struct, Value

from gateway.agents.admission import Admission, FrontDoorParts, handler_context
from gateway.delegation.call import MessageSkill
from gateway.delegation.handoffs import message_skill, proto_inputs, proto_places, stamp_skill
from gateway.delegation.pipeline import Caller
from gateway.delegation.tasks import Owner
from gateway.mcp.per_caller import PerCaller
from gateway.mcp.registry_snapshot import RegistrySnapshot, Snapshot
from gateway.mcp.skill_results import Outcome
from registry.cards import card_skills
from registry.mcp_names import cut_hashed, owner_of, skill_tool_name
from registry.store import AgentNotFound

EVENT = "mcp"
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask the agent, in words."},
        "data": {"type": "object", "description": "Structured input for the skill."},
        "taskId": {"type": "string", "description": "Continue this task (it asked for input)."},
        "contextId": {"type": "string", "description": "Continue in this conversation."},
    },
    "additionalProperties": False,
}
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


class SkillCallRefused(Exception):
    """The arguments do not make an A2A message (the tool exists)."""


@dataclass(frozen=True)
class SkillTool:
    name: str
    agent_id: str
    skill_id: str
    tool: types.Tool
    held: bool = False  # for the caller it was listed for: a call waits for approval
    tags: tuple[str, ...] = ()  # the skill's, from the card (virtual servers select by them)
    examples: tuple[str, ...] = ()  # the skill's example requests (tool search reads them)


class AgentSkillTools:
    def __init__(
        self,
        parts: Callable[[], FrontDoorParts],
        handler_for: Callable[[Mapping[str, Any]], RequestHandler],
    ) -> None:
        """``handler_for(card)``: the front door's handler for that agent (the
        A2A one, or the gateway-run one for OpenAI-compatible and webhook agents)."""
        self._parts = parts
        self._handler_for = handler_for
        # Reading every card and deciding every skill on each listing would make
        # each listing O(agents) in the database and the policy (`bench.scale`,
        # docs/performance.md). The cards are kept while the registry's
        # fingerprint stays the same (`RegistrySnapshot`), and each caller's
        # list while the policy object and the cards do: a decision depends on
        # nothing else. Calls are decided afresh as always (`Delegations.admit`).
        self._registry = RegistrySnapshot(lambda: self._parts().delegations.agents)
        self._listed: PerCaller[tuple[SkillTool, ...]] = PerCaller()
        self._every: tuple[Snapshot, tuple[SkillTool, ...]] | None = None
        # Each skill's tool definition, one object per snapshot (`_tool`).
        self._tools: tuple[Snapshot, dict[tuple[str, str], types.Tool]] | None = None

    async def catalog(
        self, caller: Caller, *, continuing: bool = False
    ) -> tuple[tuple[SkillTool, ...], frozenset[str]]:
        """The skills ``caller`` may delegate to, as tools; and the names of
        every agent's skills (whoever may use them: what names they hold).
        The tools' ``held``: a call to it would wait for approval. Both are
        the kept objects themselves, unchanged while their inputs stand (the
        listing above keys its own memo on them). ``continuing``: for a later
        page of a listing or a search, which may use a snapshot checked within
        `CONTINUATION_SECONDS` instead of asking the database again (and one
        checked within `STALE_GRACE_SECONDS` more while it is checked beside:
        `gateway.mcp.registry_snapshot`)."""
        delegations = self._parts().delegations
        snapshot = await self._registry.current(continuing)
        shared = (delegations.policy.current, snapshot)
        listed = self._listed.get(caller, shared)
        if listed is None:
            listed = self._listed.put(
                caller,
                shared,
                (),
                tuple(
                    _skill_tool(
                        agent_id,
                        skill,
                        self._tool(snapshot, agent_id, card, skill),
                        held=decision.approval_required,
                    )
                    for agent_id, card in snapshot.agents
                    for skill, decision in delegations.skill_decisions(caller, agent_id, card)
                    if decision.allowed
                ),
            )
        return listed, snapshot.names

    async def every_tool(self) -> tuple[object, tuple[SkillTool, ...]]:
        """Every agent's every skill as a tool, whoever may use it (what tool
        search indexes), with the snapshot they came from: the same objects
        while the registry is unchanged. A snapshot as recent as for the
        search's own listing will do (`catalog`'s ``continuing``; a
        registration here ends the reuse, `registry_changed`)."""
        snapshot = await self._registry.current(continuing=True)
        if self._every is None or self._every[0] is not snapshot:
            self._every = (
                snapshot,
                tuple(
                    _skill_tool(agent_id, skill, self._tool(snapshot, agent_id, card, skill))
                    for agent_id, card in snapshot.agents
                    for skill in card_skills(card)
                ),
            )
        return self._every

    def _tool(
        self, snapshot: Snapshot, agent_id: str, card: Mapping[str, Any], skill: Mapping[str, Any]
    ) -> types.Tool:
        """The skill's tool definition, one object while the snapshot stands:
        callers with the same rights then list the very same objects, and
        tool search shares its map of their listings
        (`gateway.mcp.listing_names`). A card's skill ids are unique (the
        registry refuses a duplicate)."""
        if self._tools is None or self._tools[0] is not snapshot:
            self._tools = (snapshot, {})
        key = (agent_id, str(skill["id"]))
        tool = self._tools[1].get(key)
        if tool is None:
            tool = self._tools[1][key] = _mcp_tool(agent_id, card, skill)
        return tool

    def registry_changed(self) -> None:
        """An agent was registered, refreshed or removed on this replica: the
        next page or search checks the fingerprint again (`RegistryService.listeners`)."""
        self._registry.changed()

    async def find(self, name: str) -> SkillTool | None:
        """The tool ``name`` if it is an agent's skill; whether the caller may
        use it is the call's decision (`Delegations.admit`), refused there.
        ``{agent}__...`` is looked for on that agent; a hashed name cut before
        its separator on the agents whose id it starts."""
        owner = owner_of(name)
        if owner is not None:
            candidates = [owner]
        elif cut_hashed(name):
            candidates = await self._parts().delegations.agents.ids_starting(
                name[: name.rindex("_")]
            )
        else:
            return None
        for agent_id in candidates:
            try:
                _, card, _ = await self._parts().delegations.target(agent_id)
            except AgentNotFound:
                continue
            for skill in card_skills(card):
                if skill_tool_name(agent_id, skill["id"]) == name:
                    return _skill_tool(agent_id, skill, _mcp_tool(agent_id, card, skill))
        return None

    async def call(
        self,
        tool: SkillTool,
        arguments: Mapping[str, Any] | None,
        *,
        caller: Caller,
        trace_id: str,
        progress: Progress,
        approved: bool = False,
    ) -> types.CallToolResult:
        """Run the skill; raises the pipeline's `DelegationDenied` (`ApprovalRequired`
        unless ``approved``) / `AgentNotFound` and the front door's `A2AError`s."""
        request = _request(tool, dict(arguments or {}))
        owner = Owner(caller.subject, caller.issuer, caller)
        decided = await self._decided(tool, request, caller, trace_id)
        inputs = proto_inputs(request.message)
        call = decided.call(
            caller, tool.agent_id, event=EVENT, trace_id=trace_id, approved=approved, inputs=inputs
        )
        outcome = Outcome()
        async with self._parts().delegate.open(call) as grant:
            admission = Admission(
                grant,
                owner,
                frozenset(),
                decided.skill,
                task_id=decided.task_id,
                strictest=decided.strictest,
            )
            handler = self._handler_for(grant.card)
            # Closed before the call is: its record is written as it closes.
            events = handler.on_message_send_stream(request, handler_context(admission))
            async with contextlib.aclosing(events):
                async for event in events:
                    note = outcome.take(event)
                    if note is not None:
                        outcome.steps += 1
                        await progress(outcome.steps, None, note)
        return outcome.result()

    async def _decided(
        self, tool: SkillTool, request: SendMessageRequest, caller: Caller, trace_id: str
    ) -> MessageSkill:
        """What the message is for: continuing a task (`taskId`), the task's
        skill, which must be this tool's (`gateway.delegation.handoffs.message_skill`).
        A refusal is audited before it is raised."""
        parts = self._parts()
        _, card, _ = await parts.delegations.target(tool.agent_id)
        try:
            return await message_skill(
                parts.tasks,
                tool.agent_id,
                card,
                Owner(caller.subject, caller.issuer, caller),
                proto_places(request),
                request.message.task_id or None,
            )
        except InvalidParamsError as refusal:
            await parts.delegations.refused(
                caller, tool.agent_id, event=EVENT, trace_id=trace_id, reason=str(refusal)
            )
            raise


def _mcp_tool(agent_id: str, card: Mapping[str, Any], skill: Mapping[str, Any]) -> types.Tool:
    description = str(skill.get("description") or skill.get("name") or skill["id"])
    return types.Tool(
        name=skill_tool_name(agent_id, str(skill["id"])),
        title=f"{card.get('name') or agent_id}: {skill.get('name') or skill['id']}",
        description=f"{description} (A2A agent {agent_id}, skill {skill['id']})",
        input_schema=INPUT_SCHEMA,
    )


def _skill_tool(
    agent_id: str, skill: Mapping[str, Any], tool: types.Tool, *, held: bool = False
) -> SkillTool:
    tags = tuple(str(t) for t in skill.get("tags") or () if isinstance(t, str))
    examples = tuple(e for e in skill.get("examples") or () if isinstance(e, str))
    return SkillTool(tool.name, agent_id, str(skill["id"]), tool, held, tags, examples)


def user_message(text: str | None, data: dict[str, Any] | None) -> Message:
    """A new A2A message from the user: its text (if any) and its data as a
    JSON data part (if any) -- a skill called as a tool, or asked from the
    console's playground."""
    parts = [Part(text=text)] if text else []
    if data is not None:
        struct = Struct()
        struct.update(data)
        parts.append(Part(data=Value(struct_value=struct), media_type="application/json"))
    return Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=parts)


def _request(tool: SkillTool, arguments: dict[str, Any]) -> SendMessageRequest:
    text, data = arguments.get("message"), arguments.get("data")
    if text is None and data is None:
        raise SkillCallRefused("give a message (text), data (an object), or both")
    if (text is not None and not isinstance(text, str)) or (
        data is not None and not isinstance(data, dict)
    ):
        raise SkillCallRefused("message must be a string and data an object")
    message = user_message(text, data)
    for key, field in (("taskId", "task_id"), ("contextId", "context_id")):
        value = arguments.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise SkillCallRefused(f"{key} must be a string")
            setattr(message, field, value)
    round_ = arguments.get("round")  # which question an answer answers (a flow's run)
    if isinstance(round_, int) and not isinstance(round_, bool) and 0 < round_ < 1000:
        message.metadata.update({"round": round_})
    # A2A messages name no skill; agents that serve several read it in
    # metadata, of the request or of the message: both name the tool's skill.
    request = SendMessageRequest(message=message)
    stamp_skill(request, tool.skill_id)
    return request
