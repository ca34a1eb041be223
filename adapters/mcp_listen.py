"""A 2026-07-28 server's list changes, heard on its `subscriptions/listen` stream.

At 2026-07-28 a server has no session to send a notice on: it tells of
changes only on a `subscriptions/listen` stream (SEP-2575) that the client
keeps open. `McpUpstream` runs `listen_for_changes` beside each 2026-07-28
session, for as long as the session lives, and hears a tool or prompt list
change from it as it hears the notices of a 2025-11-25 session. The stream
is the session's extra, never its health: whatever becomes of it, the
session goes on, and its probe (a fresh listing every ``probe_seconds``)
catches what a dropped stream missed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from mcp import Client, MCPError
from mcp.client.subscriptions import PromptsListChanged, ToolsListChanged
from mcp_types import METHOD_NOT_FOUND

from adapters.mcp_client import UpstreamTimings
from adapters.mcp_upstream_errors import describe

logger = logging.getLogger(__name__)


async def listen_for_changes(
    client: Client,
    *,
    server_id: str,
    timings: UpstreamTimings,
    stopping: Callable[[], bool],
    on_tools: Callable[[], None],
    on_prompts: Callable[[], None],
) -> None:
    """Keep a stream open for the tool and prompt list changes the server
    declares, until ``stopping()``; ``on_tools`` / ``on_prompts`` hear each.
    A stream that drops once open (a read timeout of a silent stream, say)
    is opened again at once; one that cannot be opened is tried again with
    backoff (up to ``probe_seconds``: the probe catches what is missed
    meanwhile); a server that does not serve it is not asked again on this
    session. Never ends the session."""
    capabilities = client.server_capabilities
    tools = bool(capabilities and capabilities.tools and capabilities.tools.list_changed)
    prompts = bool(capabilities and capabilities.prompts and capabilities.prompts.list_changed)
    if not (tools or prompts):
        return
    shortest = timings.reconnect_min_seconds
    delay = shortest
    while not stopping():
        opened = False
        try:
            async with client.listen(
                tools_list_changed=tools, prompts_list_changed=prompts
            ) as subscription:
                opened = True
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        on_tools()
                    elif isinstance(event, PromptsListChanged):
                        on_prompts()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, MCPError) and exc.code == METHOD_NOT_FOUND:
                return
            logger.debug("MCP server %s: subscriptions/listen ended: %s", server_id, describe(exc))
        if opened:
            delay = shortest
            await asyncio.sleep(min(shortest, 0.1))
        else:
            await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311
            delay = min(delay * 2, timings.probe_seconds)
