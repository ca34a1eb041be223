"""A listing applied to the store (`registry.mcp_sync`), on both databases:
what moved is reported, so that an in-memory copy reloads the server
(`SyncResult.moved`) -- a definition rewritten with its approval carried
over included, which none of the other lists names."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from registry.mcp_store import NewMcpServer, SqlMcpStore

TOOL: dict[str, Any] = {"name": "t", "description": "d", "inputSchema": {"type": "object"}}


async def test_a_definition_rewritten_with_its_approval_kept_is_a_move(
    engine: AsyncEngine,
) -> None:
    store = SqlMcpStore(engine)
    server = NewMcpServer(
        id="alpha",
        name="alpha",
        transport="http",
        url="http://alpha.example/mcp",
        command=None,
        resource="http://alpha.example/mcp",
        timeout_seconds=None,
        credential={"type": "none"},
        credential_secret=None,
        registered_by="admin",
        trusted_registrant=True,
    )
    await store.create(server, [TOOL], auto_approve=True)  # approved before apps were pinned
    same = await store.sync_tools("alpha", [TOOL], auto_approve=False)
    assert not same.moved
    with_app = {**TOOL, "_meta": {"ui": {"resourceUri": "ui://alpha/app.html"}}}
    result = await store.sync_tools("alpha", [with_app], auto_approve=False)
    assert (result.added, result.changed, result.removed) == ([], [], [])
    assert result.rewritten == ["alpha__t"] and result.moved
    [tool] = await store.tools(["alpha"])
    assert tool.definition["_meta"] == with_app["_meta"] and tool.approved_digest == tool.digest
    assert not (await store.sync_tools("alpha", [with_app], auto_approve=False)).moved
    gone = await store.sync_tools("alpha", [], auto_approve=False)
    assert gone.removed == ["alpha__t"] and gone.moved
