"""A listing applied to the store (`registry.mcp_sync`), on both databases:
what moved is reported, so that an in-memory copy reloads the server
(`SyncResult.moved`) -- a definition rewritten with its approval carried
over included, which none of the other lists names."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from registry.mcp_store import NewMcpServer, SqlMcpStore

TOOL: dict[str, Any] = {"name": "t", "description": "d", "inputSchema": {"type": "object"}}


def _server(name: str) -> NewMcpServer:
    return NewMcpServer(
        id=name,
        name=name,
        transport="http",
        url=f"http://{name}.example/mcp",
        command=None,
        resource=f"http://{name}.example/mcp",
        timeout_seconds=None,
        credential={"type": "none"},
        credential_secret=None,
        registered_by="admin",
        trusted_registrant=True,
    )


async def test_a_definition_rewritten_with_its_approval_kept_is_a_move(
    engine: AsyncEngine,
) -> None:
    store = SqlMcpStore(engine)
    # Approved before apps were pinned.
    await store.create(_server("alpha"), [TOOL], auto_approve=True)
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


async def test_the_same_listing_again_only_marks_when_it_was_listed(engine: AsyncEngine) -> None:
    """A probe's usual answer (`SqlMcpStore.listed_again`): written only
    while the server's rows hold the listing it repeats -- whichever replica
    applied it -- never after another listing was applied."""
    store = SqlMcpStore(engine)
    await store.create(_server("beta"), [TOOL], auto_approve=True)
    first = await store.sync_tools("beta", [TOOL], auto_approve=False)
    # The same listing applied again (another replica's) is the same listing.
    assert (await store.sync_tools("beta", [TOOL], auto_approve=False)).listing == first.listing
    before = await store.get("beta")
    assert before is not None and before.tools_refreshed_at is not None
    assert await store.listed_again("beta", first.listing)
    after = await store.get("beta")
    assert after is not None and after.tools_refreshed_at is not None
    assert after.tools_refreshed_at >= before.tools_refreshed_at
    # An admin's refresh (any other listing applied) meanwhile: not marked.
    changed = {**TOOL, "description": "changed"}
    refreshed = await store.sync_tools("beta", [changed], auto_approve=False)
    assert refreshed.changed == ["beta__t"] and refreshed.listing != first.listing
    assert not await store.listed_again("beta", first.listing)
    assert not await store.listed_again("gone", refreshed.listing)
    [tool] = await store.tools(["beta"])
    assert tool.definition["description"] == "changed"
    assert await store.listed_again("beta", refreshed.listing)
    # The same tools in another order are the same listing.
    other = {**TOOL, "name": "u"}
    one = await store.sync_tools("beta", [changed, other], auto_approve=False)
    assert (await store.sync_tools("beta", [other, changed], auto_approve=False)).listing == (
        one.listing
    )
