"""`ChangeWatch` on both databases: another replica's change to a set (or to
the catalog) is told to that set's clients (or everyone); a change this
replica makes and tells itself is not told a second time by the next pass;
the first pass is only a baseline."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.mcp.change_watch import ChangeWatch
from gateway.mcp.notify import ToolListNotifier
from registry.fetch import SafeFetcher
from registry.mcp_sets import McpSetSelection, McpSetSpec, SqlMcpSets
from registry.models import AgentRegistration
from registry.service import RegistryService
from registry.ssrf import AddressPolicy
from registry.store import SqlAgentStore
from tests.support.agents import v03_card

SPEC = McpSetSpec(title="Ops", select=McpSetSelection(tools=["crm__*"]))


class Told(ToolListNotifier):
    """A notifier that notes what it is asked to tell (scheduling nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[tuple[str, str | None]] = []

    def changed(self, kind: str = "tools", only: str | None = None) -> None:
        self.told.append((kind, only))

    async def own(self, kind: str, only: str | None) -> None:
        """What `_send_later` does before a notice of this replica's own."""
        for hook in self.before_send:
            await hook(kind, only)


async def test_another_replicas_changes_are_told_ones_own_are_not(engine: AsyncEngine) -> None:
    told = Told()

    def set_moved(name: str) -> None:
        told.changed("tools", only=name)
        told.changed("prompts", only=name)

    def catalog_moved() -> None:
        told.changed("tools")
        told.changed("prompts")

    watch = ChangeWatch(engine, told, set_moved=set_moved, catalog_moved=catalog_moved)
    sets = SqlMcpSets(engine)
    await sets.replace("early", SPEC, "ann")
    await watch.check()
    assert told.told == []  # the baseline: nothing was listed before it
    # Another replica replaces a set and adds one: their clients are told.
    await sets.replace("early", SPEC.model_copy(update={"title": "New"}), "ann")
    await sets.replace("late", SPEC, "ann")
    await watch.check()
    assert sorted(told.told) == [
        ("prompts", "early"),
        ("prompts", "late"),
        ("tools", "early"),
        ("tools", "late"),
    ]
    told.told.clear()
    await watch.check()
    assert told.told == []  # nothing moved since
    # This replica's own change, told by itself: the next pass keeps quiet.
    await sets.replace("late", SPEC.model_copy(update={"title": "Mine"}), "ann")
    await told.own("tools", "late")
    await sets.delete("early")
    await told.own("tools", "early")
    await watch.check()
    assert told.told == []
    # The catalog: an agent registered elsewhere tells everyone, once.
    registry = RegistryService(SqlAgentStore(engine), SafeFetcher(AddressPolicy()))
    card = v03_card("https://crm.example.com")
    await registry.register(AgentRegistration(card=card, id="crm"))
    await watch.check()
    assert told.told == [("tools", None), ("prompts", None)]
    told.told.clear()
    await watch.check()
    assert told.told == []
