"""The federated tools in memory (`gateway.federation.catalog`), on both
databases: two catalogs over one store are two replicas. A change made
here is seen by the next answer; another replica's registration, refresh,
approval and removal within its period; only the servers that moved are
read again, and what did not move keeps its very objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any
from unittest import mock

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.federation.catalog import ToolCatalog
from registry.mcp_rows import McpServerConfig, StoredTool
from registry.mcp_store import NewMcpServer, SqlMcpStore
from registry.mcp_tools import screen_tool
from registry.mcp_versions import ServerVersion


class CountingStore:
    """The real store, counting its reads (which servers' tools were read)."""

    def __init__(self, store: SqlMcpStore) -> None:
        self.store = store
        self.version_reads = 0
        self.tool_reads: list[tuple[str, ...] | None] = []
        self.broken = False

    async def versions(self) -> dict[str, ServerVersion]:
        self.version_reads += 1
        if self.broken:
            raise ConnectionError("database away")
        return await self.store.versions()

    async def tool_batches(
        self, server_ids: Sequence[str], size: int
    ) -> AsyncIterator[list[StoredTool]]:
        self.tool_reads.append(tuple(server_ids))
        async for batch in self.store.tool_batches(server_ids, size):
            yield batch

    async def configs(self, server_ids: Sequence[str] | None = None) -> list[McpServerConfig]:
        return await self.store.configs(server_ids)


def _tools(*names: str, word: str = "thing") -> list[dict[str, Any]]:
    return [
        {"name": n, "description": f"does a {word}", "inputSchema": {"type": "object"}}
        for n in names
    ]


async def _register(store: SqlMcpStore, server_id: str, *names: str) -> None:
    await store.create(
        NewMcpServer(
            id=server_id,
            name=server_id,
            transport="http",
            url=f"http://{server_id}.example/mcp",
            command=None,
            resource=f"http://{server_id}.example/mcp",
            timeout_seconds=None,
            credential={"type": "none"},
            credential_secret=None,
            registered_by="admin",
            trusted_registrant=True,
        ),
        _tools(*names),
        auto_approve=True,
    )


@pytest.fixture
async def store(engine: AsyncEngine) -> SqlMcpStore:
    made = SqlMcpStore(engine)
    await _register(made, "alpha", "echo", "add")
    await _register(made, "beta", "ping")
    return made


async def _seen(catalog: ToolCatalog, check: Any) -> None:
    """Ask ``catalog`` until its answer passes ``check`` (30 s at most)."""
    try:
        async with asyncio.timeout(30):
            # Asked again and again: each answer after the period starts the
            # look for other replicas' changes; no event says it found one.
            while not check(*await catalog.current()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        await catalog.close()


async def test_a_change_made_here_is_in_the_next_answer(store: SqlMcpStore) -> None:
    catalog = ToolCatalog(store, period=3600)  # another replica's changes: not looked for
    tools, servers = await catalog.current()
    assert set(tools) == {"alpha__add", "alpha__echo", "beta__ping"}
    assert set(servers) == {"alpha", "beta"}
    await _register(store, "gamma", "time")
    catalog.changed("gamma")
    tools, servers = await catalog.current()
    assert "gamma__time" in tools and "gamma" in servers
    await store.sync_tools("alpha", _tools("echo", "add", word="changed"), auto_approve=False)
    catalog.changed("alpha")
    tools, _ = await catalog.current()
    assert not tools["alpha__echo"].callable  # quarantined: its definition changed
    await store.approve("alpha", "alpha__echo", None, "admin")
    catalog.changed("alpha")
    assert (await catalog.current())[0]["alpha__echo"].callable
    assert await store.delete("beta")
    catalog.changed("beta")
    tools, servers = await catalog.current()
    assert "beta__ping" not in tools and "beta" not in servers


async def test_another_replicas_changes_are_seen_within_the_period(store: SqlMcpStore) -> None:
    here, there = ToolCatalog(store, period=3600), ToolCatalog(store, period=0.05)
    await here.current()
    await there.current()
    await _register(store, "gamma", "time")  # registered on "here"
    here.changed("gamma")
    await _seen(there, lambda tools, servers: "gamma__time" in tools and "gamma" in servers)
    await store.sync_tools("gamma", _tools("time", word="changed"), auto_approve=False)
    await _seen(there, lambda tools, _: not tools["gamma__time"].callable)  # a refresh
    await store.approve("gamma", "gamma__time", None, "admin")
    await _seen(there, lambda tools, _: tools["gamma__time"].callable)  # an approval
    await store.sync_tools("gamma", [], auto_approve=False)
    await _seen(there, lambda tools, _: not tools["gamma__time"].available)  # gone upstream
    assert await store.delete("gamma")
    await _seen(there, lambda tools, servers: "gamma__time" not in tools and "gamma" not in servers)


async def test_only_the_servers_that_moved_are_read_again(store: SqlMcpStore) -> None:
    counting = CountingStore(store)
    catalog = ToolCatalog(counting, period=3600)
    first, _ = await catalog.current()
    alpha_echo, beta_ping = first["alpha__echo"], first["beta__ping"]
    counting.tool_reads.clear()
    catalog.changed()  # told of a change somewhere, and none was made
    assert (await catalog.current())[0] is first  # the same object: listings stay kept
    assert counting.tool_reads == []
    await store.sync_tools("alpha", _tools("echo", "add", "new"), auto_approve=True)
    catalog.changed()
    tools, _ = await catalog.current()
    assert counting.tool_reads == [("alpha",)]
    assert tools is not first and "alpha__new" in tools
    assert tools["beta__ping"] is beta_ping  # beta was not read again
    assert tools["alpha__echo"] == alpha_echo
    assert list(tools) == sorted(tools)  # in name order, as the store lists them


async def test_concurrent_calls_share_one_read(store: SqlMcpStore) -> None:
    counting = CountingStore(store)
    catalog = ToolCatalog(counting, period=3600)
    answers = await asyncio.gather(*(catalog.current() for _ in range(20)))
    assert counting.version_reads == 1
    assert all(tools is answers[0][0] for tools, _ in answers)


async def test_a_failed_read_is_retried_by_the_next_call(store: SqlMcpStore) -> None:
    counting = CountingStore(store)
    catalog = ToolCatalog(counting, period=3600)
    counting.broken = True
    with pytest.raises(ConnectionError):
        await catalog.current()
    counting.broken = False
    assert "alpha__echo" in (await catalog.current())[0]


async def test_a_change_told_during_a_read_is_read_again(store: SqlMcpStore) -> None:
    """A read under way may predate the change: the caller who told it waits
    for a read that began after."""
    counting = CountingStore(store)
    catalog = ToolCatalog(counting, period=3600)
    gate = asyncio.Event()
    reading = asyncio.Event()
    plain = counting.versions

    async def slow() -> dict[str, ServerVersion]:
        found = await plain()  # what the database held when the read began
        reading.set()
        await gate.wait()
        return found

    counting.versions = slow  # type: ignore[method-assign]
    early = asyncio.create_task(catalog.current())
    await reading.wait()
    await _register(store, "gamma", "time")
    catalog.changed("gamma")
    counting.versions = plain  # type: ignore[method-assign]
    late = asyncio.create_task(catalog.current())
    gate.set()
    assert "gamma__time" not in (await early)[0]
    assert "gamma__time" in (await late)[0]


async def test_a_probe_listing_as_stored_screens_and_moves_nothing(store: SqlMcpStore) -> None:
    """A server's probe lists its tools every `probe_seconds`: unchanged, they
    are neither screened again (the screen is most of a sync's CPU, on the
    event loop, for each of a server's 1,000 tools) nor written; a changed
    one is screened, and moves its server's version."""
    before = await store.versions()
    with mock.patch("registry.mcp_sync.screen_tool", wraps=screen_tool) as screened:
        result = await store.sync_tools("alpha", _tools("echo", "add"), auto_approve=False)
        assert (result.added, result.changed, result.removed) == ([], [], [])
        assert screened.call_count == 0
        assert await store.versions() == before
        tools = [*_tools("echo"), *_tools("add", word="new thing")]
        result = await store.sync_tools("alpha", tools, auto_approve=False)
        assert result.changed == ["alpha__add"] and screened.call_count == 1
    assert (await store.versions())["alpha"] != before["alpha"]
