"""`AgentSkillTools`'s registry snapshot (`gateway.mcp.registry_snapshot`): a listing's first page asks the
registry's fingerprint, a later page or a search within `CONTINUATION_SECONDS`
does not (the fingerprint is O(agents) in the database, and a listing may be
300 pages), and after it they are answered from the snapshot while the
check runs beside them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.mcp import registry_snapshot as registry_snapshot_module
from gateway.mcp.agent_tools import AgentSkillTools
from gateway.mcp.registry_snapshot import CONTINUATION_SECONDS, STALE_GRACE_SECONDS
from tests.support.waiting import wait_for_async


class _Agents:
    def __init__(self) -> None:
        self.fingerprints = 0
        self.reads = 0
        self.revision = 1
        self.title = "Alpha"  # the card's name, which a skill's tool title holds

    async def fingerprint(self) -> tuple[int, str, int]:
        self.fingerprints += 1
        return 1, self.title, self.revision

    async def all_with_cards(self) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        self.reads += 1
        card = {"name": self.title, "skills": [{"id": f"s{self.revision}", "name": "S"}]}
        yield SimpleNamespace(id="alpha"), card


def _tools(agents: _Agents) -> AgentSkillTools:
    allowed = SimpleNamespace(allowed=True, approval_required=False)
    held = SimpleNamespace(allowed=True, approval_required=True)

    def decisions(caller: Any, agent_id: str, card: dict[str, Any]) -> list[Any]:
        decided = held if caller.subject == "held" else allowed
        return [(s, decided) for s in card["skills"]]

    delegations = SimpleNamespace(
        agents=agents, policy=SimpleNamespace(current=object()), skill_decisions=decisions
    )
    parts: Any = SimpleNamespace(delegations=delegations)
    return AgentSkillTools(lambda: parts, lambda card: None)  # type: ignore[arg-type,return-value]


CALLER: Any = SimpleNamespace(subject="u", issuer="i", scopes=(), actors=(), client_id=None)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The module's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(registry_snapshot_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


async def test_later_pages_reuse_a_fresh_check_and_first_pages_always_ask(
    clock: list[float],
) -> None:
    agents = _Agents()
    tools = _tools(agents)
    first, _ = await tools.catalog(CALLER)
    asked = agents.fingerprints
    assert asked >= 1 and agents.reads == 1  # checked, then the cards read
    for _ in range(5):  # the listing's later pages, within the second
        assert (await tools.catalog(CALLER, continuing=True))[0] is first
    assert agents.fingerprints == asked
    agents.revision = 2  # a new card: the next listing's first page sees it
    changed, names = await tools.catalog(CALLER)
    assert agents.fingerprints > asked and agents.reads == 2
    assert [t.skill_id for t in changed] == ["s2"] and names == {"alpha__s2"}
    agents.revision = 3
    clock[0] += CONTINUATION_SECONDS + 0.1  # a later page, but the check is stale
    stale, _ = await tools.catalog(CALLER, continuing=True)
    assert stale is changed  # answered from the snapshot; the check runs beside it
    await wait_for_async(lambda: agents.reads == 3, seconds=5, what="the check beside")
    latest, _ = await tools.catalog(CALLER, continuing=True)
    assert [t.skill_id for t in latest] == ["s3"]


async def test_a_change_through_this_replicas_registry_ends_the_reuse(
    clock: list[float],
) -> None:
    agents = _Agents()
    tools = _tools(agents)
    await tools.catalog(CALLER)
    agents.revision = 2
    tools.registry_changed()  # `RegistryService.changed()` after a removal, say
    changed, _ = await tools.catalog(CALLER, continuing=True)
    assert [t.skill_id for t in changed] == ["s2"]


async def test_a_change_during_a_fingerprint_read_is_not_undone(clock: list[float]) -> None:
    """A read of the fingerprint begun before a change here and ended after
    it must not make the snapshot reusable again: the next search or later
    page asks afresh and sees the change."""
    agents = _Agents()
    tools = _tools(agents)
    await tools.catalog(CALLER)  # the snapshot, checked
    clock[0] += CONTINUATION_SECONDS + 0.1  # its check has gone stale
    release = asyncio.Event()
    reading = asyncio.Event()
    answer = agents.fingerprint

    async def slow_fingerprint() -> tuple[int, str, int]:
        found = await answer()  # as the registry stood when the read began
        reading.set()
        await release.wait()
        return found

    agents.fingerprint = slow_fingerprint  # type: ignore[method-assign]
    stale, _ = await tools.catalog(CALLER, continuing=True)  # the check starts beside it
    assert [t.skill_id for t in stale] == ["s1"]
    await reading.wait()
    agents.revision = 2  # registered meanwhile, through this replica's registry
    tools.registry_changed()
    release.set()
    # The check ends, with the registry as it stood when it began.
    await wait_for_async(
        lambda: tools._registry._checking is not None and tools._registry._checking.done()
    )
    agents.fingerprint = answer  # type: ignore[method-assign]
    latest, _ = await tools.catalog(CALLER, continuing=True)
    assert [t.skill_id for t in latest] == ["s2"]


async def test_a_search_does_not_wait_for_a_stale_check(clock: list[float]) -> None:
    """Past `CONTINUATION_SECONDS` a later page or a search is answered from
    the snapshot at once; one check runs beside however many ask."""
    agents = _Agents()
    tools = _tools(agents)
    first, _ = await tools.catalog(CALLER)
    clock[0] += CONTINUATION_SECONDS + 0.1
    release = asyncio.Event()
    answer = agents.fingerprint
    began = [0]

    async def stuck_fingerprint() -> tuple[int, str, int]:
        began[0] += 1
        await release.wait()
        return await answer()

    agents.fingerprint = stuck_fingerprint  # type: ignore[method-assign]
    for _ in range(3):
        found, _ = await asyncio.wait_for(tools.catalog(CALLER, continuing=True), 5)
        assert found is first
    await wait_for_async(lambda: began[0] == 1, seconds=5, what="one check")
    release.set()
    # A listing's first page still asks in line.
    assert (await asyncio.wait_for(tools.catalog(CALLER), 5))[0] is first
    assert began[0] == 2


async def test_a_check_that_fails_keeps_the_snapshot_within_its_grace(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=registry_snapshot_module.__name__)
    agents = _Agents()
    tools = _tools(agents)
    first, _ = await tools.catalog(CALLER)
    tries = [0]

    async def down() -> tuple[int, str, int]:
        tries[0] += 1
        raise ConnectionError("database unavailable")

    agents.fingerprint = down  # type: ignore[method-assign]
    clock[0] += CONTINUATION_SECONDS + 0.1
    assert (await tools.catalog(CALLER, continuing=True))[0] is first
    await wait_for_async(lambda: tries[0] == 1, seconds=5, what="the check")
    # Not tried again at every search: a second on.
    assert (await tools.catalog(CALLER, continuing=True))[0] is first
    await asyncio.sleep(0)
    assert tries[0] == 1
    clock[0] += CONTINUATION_SECONDS
    assert (await tools.catalog(CALLER, continuing=True))[0] is first
    await wait_for_async(lambda: tries[0] == 2, seconds=5, what="the next check")
    warned = [r for r in caplog.records if "could not be checked" in r.getMessage()]
    assert [r.levelname for r in warned] == ["WARNING", "DEBUG"]  # warned once a run
    assert "database unavailable" in warned[0].getMessage()
    # Past the grace the snapshot is not answered blind: asked in line, the
    # outage is the caller's to hear.
    clock[0] += STALE_GRACE_SECONDS
    with pytest.raises(ConnectionError):
        await tools.catalog(CALLER, continuing=True)
    with pytest.raises(ConnectionError):  # a first page always asks in line
        await tools.catalog(CALLER)


async def test_a_snapshot_idle_past_its_grace_is_checked_in_line(clock: list[float]) -> None:
    """After an idle spell the first search sees another replica's change
    (not told here): the snapshot is older than its check's grace."""
    agents = _Agents()
    tools = _tools(agents)
    await tools.catalog(CALLER)
    agents.revision = 2  # changed elsewhere: no `registry_changed` here
    clock[0] += 3600
    latest, _ = await tools.catalog(CALLER, continuing=True)
    assert [t.skill_id for t in latest] == ["s2"]


async def test_callers_list_one_tool_object_per_skill_while_the_registry_stands(
    clock: list[float],
) -> None:
    """Tool search shares its map of listings made of the very same objects
    (`gateway.mcp.listing_names`): two callers' skills are one tool object
    each, held for one of them or not, and a card changed under the same
    skill id makes new ones."""
    agents = _Agents()
    tools = _tools(agents)
    other: Any = SimpleNamespace(subject="held", issuer="i", scopes=(), actors=(), client_id=None)
    mine, _ = await tools.catalog(CALLER)
    theirs, _ = await tools.catalog(other)
    assert mine is not theirs  # each caller's list is its own
    assert [s.held for s in mine] == [False] and [s.held for s in theirs] == [True]
    assert mine[0].tool is theirs[0].tool
    _, every = await tools.every_tool()
    assert every[0].tool is mine[0].tool
    agents.title = "Alpha 2"  # the card edited, its skill's id the same
    edited, _ = await tools.catalog(CALLER)  # a first page: the fingerprint is asked
    assert edited[0].skill_id == mine[0].skill_id and edited[0].tool is not mine[0].tool
    assert edited[0].tool.title == "Alpha 2: S"
