"""Registering a flow (`FlowService.register`).

Registering checks the document (`documents.validate`, then `checks.check`
against the registry, the federation and the stored flows), stores it as the
flow's next version and writes the flow's card as an agent in the registry
(`agent.flow_card`: a new card version with each flow version, the input
schema as the contract of its skill ``run``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.federation.federated_tools import ToolNotFound
from gateway.flows.cards import flow_card
from gateway.flows.checks import check
from gateway.flows.definition import CallStep, FlowDocument
from gateway.flows.documents import DocumentInvalid, validate
from gateway.flows.engine import FlowEngine
from gateway.flows.models import FlowRecord
from gateway.flows.runtime import FlowRuntime, is_idempotent
from gateway.flows.target_checks import AgentInfo, ToolInfo, called_agents
from gateway.flows.trigger_checks import check_triggers
from registry.signatures import SignatureCheck, SignatureStatus
from registry.store import AgentConflict, AgentNotFound, NewAgent
from registry.vendor_cards import gateway_run_kind


class Registrations:
    """`FlowService`'s registration of flows."""

    rt: FlowRuntime
    engine: FlowEngine
    public_url: str
    registered_listeners: list[Callable[[], None]]
    registered_hooks: list[Callable[[], Awaitable[None]]]

    async def register(self, data: Any, by: str) -> tuple[FlowRecord, bool]:
        """Check and store; `DocumentInvalid` names every problem's step and field."""
        document = validate(data)
        catalog = _Catalog(self.rt)
        stored = {flow.id: flow.document for flow in await self.rt.store.list()}
        problems = await check(document, catalog) + await check_triggers(
            document, catalog, self.rt.settings.secrets.keys(), stored
        )
        if problems:
            raise DocumentInvalid(problems)
        raw = document.model_dump(mode="json", exclude_none=True, by_alias=True)
        store = self.rt.store
        agents = self.rt.delegations.agents
        existing = await agents.get(document.id)
        if existing is not None:
            card = await agents.card(document.id)
            if card is None or gateway_run_kind(card) != "flow":
                raise AgentConflict(f"{document.id}: an agent with this id exists")
        url = f"{self.public_url}/a2a/{document.id}"
        contracts = {"run": document.input}
        unsigned = SignatureCheck(SignatureStatus.UNSIGNED, "written by the gateway")
        if existing is None:
            # The first version and the flow's agent, in one transaction.
            async def first(conn: AsyncConnection) -> None:
                await store.save(raw, by, conn)

            await agents.create(
                NewAgent(
                    id=document.id,
                    resource=f"urn:switchboard:flow:{document.id}",
                    card_url=None,
                    parsed=flow_card(document, url, 1),
                    signature=unsigned,
                    pinned_keys=None,
                    skill_contracts=contracts,
                ),
                also=first,
            )
            changed = True
        else:
            version, changed = await store.save(raw, by)
            if changed:
                await agents.add_revision(document.id, flow_card(document, url, version), unsigned)
                await store.set_agent_contracts(document.id, contracts)
        record = await store.get(document.id)
        await self.engine.ensure()
        for listener in self.registered_listeners:
            listener()
        for hook in self.registered_hooks:
            await hook()
        return record, changed


class _Catalog:
    """What `checks.check` looks up, from the registry, the federation and the stored flows."""

    def __init__(self, rt: FlowRuntime) -> None:
        self.rt = rt

    async def agent(self, agent_id: str) -> AgentInfo | None:
        try:
            record, card, _ = await self.rt.delegations.target(agent_id)
        except AgentNotFound:
            return None
        skills = tuple(str(s.get("id")) for s in card.get("skills") or () if isinstance(s, Mapping))
        return AgentInfo(skills, record.skill_contracts or {}, gateway_run_kind(card) == "flow")

    async def tool(self, name: str) -> ToolInfo | None:
        try:
            tool = await self.rt.federation().tool(name)
        except ToolNotFound:
            return None
        definition = tool.definition
        inputs, outputs = definition.get("inputSchema"), definition.get("outputSchema")
        return ToolInfo(
            inputs if isinstance(inputs, Mapping) else None,
            outputs if isinstance(outputs, Mapping) else None,
        )

    def idempotent(self, step: CallStep, tool: ToolInfo | None) -> bool:
        return is_idempotent(self.rt, step)

    async def flow_calls(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {}
        for flow in await self.rt.store.list():
            document = FlowDocument.model_validate(flow.document)
            graph[flow.id] = {agent for _, _, agent in called_agents(document)}
        return graph
