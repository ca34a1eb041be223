"""The federated tools in memory, kept in step with the store server by server.

The call path reads tools and servers from memory (`McpFederation._current`).
What is in memory is kept per server, with the server's version
(`SqlMcpStore.versions`: its row's change, its tools' latest listing, count,
availability, approvals). A change is applied where it happens:

* a change made on this replica (a registration, refresh, approval or
  removal), or found by its upstream connections (a listing that changed
  the tools; a server registered, edited or removed elsewhere, which the
  reconciler's pass starts, restarts or stops: `McpUpstreams.reconcile`),
  names its server (`changed`): the next answer reloads that server's rows
  first, so the caller who made it sees it, and once a server's
  connection is stopped or restarted no answer offers its old tools;
* a change told without a server (an upstream's tools moved, or the change
  watch saw the catalog move elsewhere) reads every server's version before
  the next answer, and reloads the servers whose version moved;
* another replica's change, told to no one here, is found by that same
  version read, run in the background at most every ``period`` seconds while
  calls arrive: a call never waits for it, and sees the change at most
  ``period`` (plus the read) after it was made.

Only the servers that moved are read again, `BATCH_TOOLS` rows at a time
(their JSON is decoded on the event loop, which serves other requests
between batches); the others keep their very objects. The answer's
mappings are replaced, never changed, and replaced only when a server's
tools did change: what a listing worked out from them is kept while they
stand (`gateway.mcp.per_caller`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.federation.federated_tools import SNAPSHOT_SECONDS, FederatedTool
from registry.mcp_rows import McpServerConfig, StoredTool
from registry.mcp_versions import ServerVersion

logger = logging.getLogger(__name__)

BATCH_TOOLS = 200  # tools decoded on the event loop at a time


@dataclass(frozen=True)
class Server:
    resource: str
    timeout_seconds: float | None


class CatalogStore(Protocol):
    async def versions(self) -> dict[str, ServerVersion]: ...

    def tool_batches(
        self, server_ids: Sequence[str], size: int
    ) -> AsyncIterator[list[StoredTool]]: ...

    async def configs(self, server_ids: Sequence[str] | None = None) -> list[McpServerConfig]: ...


@dataclass(frozen=True)
class _Entry:
    version: ServerVersion | None  # None: reload at the next read whatever the version says
    server: Server
    tools: Mapping[str, FederatedTool]


class ToolCatalog:
    def __init__(
        self,
        store: CatalogStore,
        *,
        period: float = SNAPSHOT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._period = period
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        # What `current` answers: replaced, never changed.
        self.tools: Mapping[str, FederatedTool] = {}
        self.servers: Mapping[str, Server] = {}
        self._stale: set[str] = set()  # servers changed here, reloaded before the next answer
        self._told = 0  # changes told
        self._read_upto = -1  # the changes told before the last read that finished began
        self._check_after = 0.0  # when another replica's changes are looked for again
        self._reading = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    def changed(self, server_id: str | None = None) -> None:
        """A change was made to ``server_id``'s rows (or, None, to some
        server's): the next answer reads it first."""
        self._told += 1
        if server_id is not None:
            self._stale.add(server_id)

    async def current(self) -> tuple[Mapping[str, FederatedTool], Mapping[str, Server]]:
        if self._read_upto < self._told:
            await self._read(self._told)
        elif self._clock() >= self._check_after and (
            self._background is None or self._background.done()
        ):
            self._background = asyncio.create_task(self._look())
        return self.tools, self.servers

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
            self._background = None

    async def _look(self) -> None:
        """Another replica's changes, looked for while calls go on (a failure
        is logged; the next call after ``period`` looks again)."""
        try:
            await self._read(self._told, background=True)
        except Exception:
            logger.warning("MCP tool catalog: the store could not be read", exc_info=True)
            self._check_after = self._clock() + self._period
        finally:
            self._background = None

    async def _read(self, told: int, *, background: bool = False) -> None:
        async with self._reading:
            if self._read_upto >= told and not background:
                return  # a read that began after those changes has finished meanwhile
            began, stale = self._told, self._stale
            self._stale = set()
            try:
                await self._apply(stale)
            except BaseException:
                self._stale |= stale
                raise
            self._read_upto = max(self._read_upto, began)

    async def _apply(self, stale: set[str]) -> None:
        checked_at = self._clock()
        versions = await self._store.versions()
        moved = [
            server_id
            for server_id, version in versions.items()
            if server_id in stale or _version(self._entries.get(server_id)) != version
        ]
        gone = [server_id for server_id in self._entries if server_id not in versions]
        entries = dict(self._entries)
        for server_id in gone:
            del entries[server_id]
        replaced = bool(gone)
        configs = {c.id: c for c in await self._store.configs(moved)} if moved else {}
        by_server: dict[str, dict[str, FederatedTool]] = {s: {} for s in moved}
        if moved:
            async for batch in self._store.tool_batches(moved, BATCH_TOOLS):
                for row in batch:
                    by_server[row.server_id][row.namespaced] = FederatedTool.of(row)
                await asyncio.sleep(0)  # the event loop's other work between batches
        for server_id in moved:
            config = configs.get(server_id)
            if config is None:  # removed between the two reads
                replaced |= entries.pop(server_id, None) is not None
                continue
            old = entries.get(server_id)
            tools = by_server[server_id]
            server = Server(config.resource, config.timeout_seconds)
            if old is not None and old.tools == tools:
                tools_kept: Mapping[str, FederatedTool] = old.tools
            else:
                tools_kept, replaced = tools, True
            replaced |= old is None or old.server != server
            entries[server_id] = _Entry(versions[server_id], server, tools_kept)
        self._entries = entries
        if replaced:
            every = [tool for entry in entries.values() for tool in entry.tools.values()]
            self.tools = {tool.name: tool for tool in sorted(every, key=lambda t: t.name)}
            self.servers = {server_id: entry.server for server_id, entry in entries.items()}
        self._check_after = checked_at + self._period


def _version(entry: _Entry | None) -> ServerVersion | None:
    return entry.version if entry is not None else None
