"""The federation's tool snapshot: one store read per expiry however many calls
find it expired, and never an answer kept that predates an invalidation."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.federation import federation as federation_module
from gateway.federation.federated_tools import SNAPSHOT_SECONDS
from gateway.federation.federation import FederationSettings, McpFederation
from registry.mcp_store import McpServerConfig, StoredTool


def _tool(name: str) -> StoredTool:
    return StoredTool(
        server_id="alpha",
        name=name,
        namespaced=f"alpha__{name}",
        definition={"name": name, "inputSchema": {"type": "object"}},
        digest="d",
        approved_digest="d",
        flags=(),
        available=True,
    )


class _Store:
    """Answers with ``names`` as they are when the read finishes; reads take a while."""

    def __init__(self) -> None:
        self.names = ["echo"]
        self.reads = 0
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()

    async def tools(self) -> list[StoredTool]:
        self.reads += 1
        self.reading.set()
        names = list(self.names)  # what the database held when the read began
        await self.gate.wait()
        return [_tool(n) for n in names]

    async def configs(self) -> list[McpServerConfig]:
        config = McpServerConfig(
            id="alpha",
            transport="http",
            url="http://alpha.example/mcp",
            command=None,
            args=(),
            resource="http://alpha.example/mcp",
            timeout_seconds=None,
            credential={},
            credential_secret=None,
            version="1",
            trusted_registrant=True,
        )
        return [config]


def _federation(store: _Store) -> McpFederation:
    settings = FederationSettings(
        stdio_commands=(),
        auto_approve_new_tools=False,
        sealing_secret=None,
        connect_timeout_seconds=1,
        default_timeout_seconds=1,
    )
    nothing: Any = None
    return McpFederation(store, nothing, nothing, nothing, settings)  # type: ignore[arg-type]


async def test_concurrent_calls_share_one_read() -> None:
    store = _Store()
    federation = _federation(store)
    waiting = [asyncio.create_task(federation.tool("alpha__echo")) for _ in range(20)]
    await asyncio.sleep(0)
    store.gate.set()
    found = await asyncio.gather(*waiting)
    assert store.reads == 1
    assert {tool.name for tool in found} == {"alpha__echo"}
    await federation.tool("alpha__echo")  # within the snapshot's life: no read
    assert store.reads == 1


async def test_a_read_that_predates_an_invalidation_is_not_kept() -> None:
    store = _Store()
    federation = _federation(store)
    early = asyncio.create_task(federation.tools())
    await store.reading.wait()
    store.reading.clear()
    store.names = ["echo", "added"]  # a registration lands while the read is under way
    federation.invalidate()
    late = asyncio.create_task(federation.tools())
    await store.reading.wait()
    store.gate.set()
    assert {t.name for t in await early} == {"alpha__echo"}
    assert {t.name for t in await late} == {"alpha__echo", "alpha__added"}
    assert store.reads == 2
    assert {t.name for t in await federation.tools()} == {"alpha__echo", "alpha__added"}
    assert store.reads == 2  # the newer answer was kept


async def test_a_failed_read_is_retried_by_the_next_call() -> None:
    store = _Store()
    federation = _federation(store)
    store.gate.set()
    failing = store.tools

    async def broken() -> list[StoredTool]:
        raise ConnectionError("database away")

    store.tools = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await federation.tools()
    store.tools = failing  # type: ignore[method-assign]
    assert [t.name for t in await federation.tools()] == ["alpha__echo"]


async def test_an_unchanged_read_keeps_the_snapshot_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a listing worked out is kept while the snapshot is the same object
    (`gateway.mcp.per_caller`): a read that finds nothing changed must not
    replace it, and one that finds a change must."""
    store = _Store()
    store.gate.set()
    federation = _federation(store)
    first = await federation.snapshot()
    clock = [time.monotonic()]
    monkeypatch.setattr(federation_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    clock[0] += SNAPSHOT_SECONDS + 1  # expired: read again
    assert await federation.snapshot() is first
    assert store.reads == 2
    store.names = ["echo", "added"]
    clock[0] += SNAPSHOT_SECONDS + 1
    changed = await federation.snapshot()
    assert changed is not first and set(changed) == {"alpha__echo", "alpha__added"}
    assert store.reads == 3
    store.names = ["echo"]
    federation.invalidate()
    again = await federation.snapshot()
    assert again is not changed and set(again) == {"alpha__echo"}
