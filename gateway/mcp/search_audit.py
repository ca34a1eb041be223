"""Every `switchboard__search_tools` call is audited like any other
decision: who searched (user, client, actors), where (``/mcp`` or the
virtual server's path), how many tools were found, with the trace id of the
request -- and the query's text unless the settings say queries are private
(``mcp_tool_search_private_queries``: a query can say more about a user than
the tools it finds). Bad arguments are recorded as a refusal with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import mcp_types as types
from mcp.server import ServerRequestContext

from gateway.delegation.audit_records import AuditEvent
from gateway.mcp.auth import MCP_PATH
from gateway.mcp.errors import caller_of, trace_of
from gateway.mcp.sets import current_set
from gateway.mcp.tool_search import SEARCH_TOOL, ToolSearch, search_answer

SEARCH_EVENT = "mcp.search"
MAX_QUERY_RECORDED = 500  # the longest query search_tools takes


async def searched(
    search: ToolSearch,
    ctx: ServerRequestContext,
    params: types.CallToolRequestParams,
    offered: Callable[[], Awaitable[Sequence[types.Tool]]],
) -> types.CallToolResult:
    """The answer of a `switchboard__search_tools` call (``offered``: the
    caller's listing here), once its record is kept (``search.record``)."""
    started = time.perf_counter()
    result = await search_answer(search, params, offered)
    if search.record is None:
        return result
    caller, chosen = caller_of(ctx), current_set.get()
    found = (result.structured_content or {}).get("tools")
    refused = bool(result.is_error) or not isinstance(found, list)
    query = (params.arguments or {}).get("query")
    detail = _refusal(result) if refused else f"{len(found or [])} found"
    if not search.private_queries and isinstance(query, str):
        detail += f"; query: {query[:MAX_QUERY_RECORDED]!r}"
    await search.record(
        AuditEvent(
            event=SEARCH_EVENT,
            trace_id=trace_of(ctx),
            subject=caller.subject,
            subject_issuer=caller.issuer,
            client_id=caller.client_id,
            actors=caller.actors,
            target=MCP_PATH if chosen is None else f"{MCP_PATH}/{chosen.name}",
            action=SEARCH_TOOL,
            decision="deny" if refused else "allow",
            outcome="invalid_arguments" if refused else "ok",
            detail=detail,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    )
    return result


def _refusal(result: types.CallToolResult) -> str:
    texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
    return texts[0][:300] if texts else "refused"
