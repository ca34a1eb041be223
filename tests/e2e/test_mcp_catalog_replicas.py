"""An MCP server removed or edited on one replica is not served by another
once that one's upstream connections have caught up (SQLite and PostgreSQL:
two gateways on one database, a real upstream MCP server built with the
official SDK, the official `mcp` client on replica B's `/mcp`).

Replica B learns of the change from its reconciler (`mcp-upstreams`), which
stops or restarts the server's connection: it tells B's tool catalog too
(`McpUpstreams.reconcile`), so the very next answer is read from the store
-- not the catalog's copy, served once more while its own look for other
replicas' changes runs in the background. B's change watch is off, so
nothing else tells the catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mcp_types as types
import pytest
from mcp import MCPError

from tests.support.gateway import Gateway, replicas
from tests.support.mcp_clients import mcp_client
from tests.support.mcp_servers import ToolBox, add, upstream_server
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for

OLD = {"alpha__add", "alpha__slow", "alpha__fail", "alpha__whoami"}


@dataclass
class Pair:
    a: Gateway
    b: Gateway
    upstreams: list[ServerThread] = field(default_factory=list)

    def serve(self, box: ToolBox | None = None) -> str:
        server, _, _ = upstream_server(box)
        self.upstreams.append(server)
        return server.url + "/mcp"

    def register_on_a(self, url: str) -> None:
        with self.a.client() as admin:
            added = admin.post("/mcp-servers", json={"name": "Alpha", "id": "alpha", "url": url})
        assert added.status_code == 201, added.text

    def remove_on_a(self) -> None:
        with self.a.client() as admin:
            assert admin.delete("/mcp-servers/alpha").status_code == 204

    def on_b(self) -> tuple[set[str], str]:
        """What B's `/mcp` serves now: the alpha tools it lists, and what a
        call to ``alpha__whoami`` -- made first, the first read after a
        change -- answers ("ok", or the error's message)."""

        token = self.b.token("carol")  # outside B's loop: it reads the key itself

        async def run() -> tuple[set[str], str]:
            async with mcp_client(self.b.url + "/mcp", token, "2026-07-28") as c:
                try:
                    result = await c.call_tool("alpha__whoami", {})
                    said = "ok" if isinstance(result, types.CallToolResult) else repr(result)
                except MCPError as refused:
                    said = refused.message
                listed = {t.name for t in (await c.list_tools()).tools}
            return {n for n in listed if n.startswith("alpha__")}, said

        found: tuple[set[str], str] = self.b.server.run(run())
        return found


@pytest.fixture
def pair(tmp_path: Path, database_url: str | None) -> Iterator[Pair]:
    # No change watch: B's catalog hears only what B's own parts tell it.
    with replicas(tmp_path / "data", database_url, mcp_change_watch_seconds=0) as (a, b):
        made = Pair(a, b)
        try:
            made.register_on_a(made.serve())
            # B has read the server (its catalog loaded it), and connected to it.
            wait_for(lambda: made.on_b()[0] == OLD, what="alpha's tools on B")
            b.passes("mcp-upstreams")
            assert b.server.app.state.switchboard.mcp.upstreams.tools_of("alpha") is not None
            yield made
        finally:
            stop_all(*made.upstreams)


def test_a_server_removed_on_one_replica_is_not_served_by_the_other(pair: Pair) -> None:
    pair.remove_on_a()
    pair.b.passes("mcp-upstreams")  # B's connection to it stopped
    assert pair.b.server.app.state.switchboard.mcp.upstreams.tools_of("alpha") is None
    assert pair.on_b() == (set(), "Unknown tool: alpha__whoami")


def test_a_server_edited_on_one_replica_is_served_as_edited_by_the_other(pair: Pair) -> None:
    # The same id at another server, whose tools differ: one more, one gone.
    box = ToolBox()
    box.describe(add, "Adds two integers, as the edited server does.", name="plus")
    box.server.remove_tool("whoami")
    upstreams = pair.b.server.app.state.switchboard.mcp.upstreams
    old = upstreams.tools_of("alpha")
    assert old is not None
    pair.remove_on_a()
    pair.register_on_a(pair.serve(box))
    pair.b.passes("mcp-upstreams")  # B's connection to it restarted
    new = upstreams.tools_of("alpha")
    assert new is not None and new[0] is not old[0]
    edited = OLD - {"alpha__whoami"} | {"alpha__plus"}
    assert pair.on_b() == (edited, "Unknown tool: alpha__whoami")
