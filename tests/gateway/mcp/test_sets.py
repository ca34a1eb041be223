"""`gateway.mcp.sets.unknown_tools`: what a set's exact tool names are
checked against (issue 57), including servers none of whose tools is known
yet, whose names are taken on trust (the e2e path is tests/e2e/test_mcp_sets.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from gateway.mcp.sets import unknown_tools
from registry.mcp_models import McpServerRecord
from registry.store import SqlAgentStore


class Agents:
    """The two reads `unknown_tools` makes of the agent store."""

    cards = {"sales": {"skills": [{"id": "quote"}, {"name": "no id"}]}}

    async def card(self, agent_id: str) -> dict[str, Any] | None:
        return self.cards.get(agent_id)

    async def ids_starting(self, start: str) -> list[str]:
        return [a for a in self.cards if a.startswith(start)]


def server(server_id: str, *tools: str, prefix: bool = True) -> McpServerRecord:
    listed = [SimpleNamespace(namespaced=t) for t in tools]
    return cast(McpServerRecord, SimpleNamespace(id=server_id, tools=listed, prefix_tools=prefix))


async def unknown(names: list[str], *servers: McpServerRecord) -> list[str]:
    agents = cast(SqlAgentStore, Agents())
    return await unknown_tools(names, list(servers), agents, frozenset({"switchboard__call_tool"}))


async def test_exact_names_must_be_offered_and_patterns_are_not_checked() -> None:
    crm = server("crm", "crm__search_contacts")
    names = ["crm__search_contacts", "sales__quote", "switchboard__call_tool", "nobody__*"]
    assert await unknown(names, crm) == []
    typos = ["crm__serch_contacts", "sales__qoute", "switchboard__cal_tool", "nobody__x", "plain"]
    assert await unknown(typos, crm) == typos


async def test_a_server_with_no_tools_known_yet_may_offer_its_own_names() -> None:
    waiting = server("mail")  # user_oauth, its registrant not connected yet
    assert await unknown(["mail__send", "crm__send", "send"], waiting) == ["crm__send", "send"]
    plain = server("notes", prefix=False)
    assert await unknown(["send", "crm__send"], plain) == ["crm__send"]
    # Once a tool of it is known, its names are checked.
    assert await unknown(["mail__send"], server("mail", "mail__read")) == ["mail__send"]
