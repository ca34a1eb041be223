"""Every `switchboard__search_tools` call is audited like any other
decision: who searched (user, client, actors), where (``/mcp`` or the
virtual server's path), how many tools were found, with the trace id of the
request -- and the query's text unless the settings say queries are private
(``mcp_tool_search_private_queries``: a query can say more about a user than
the tools it finds). Bad arguments are recorded as a refusal with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp_types as types

from gateway.delegation.audit import AuditEvent
from gateway.delegation.permits import Caller
from gateway.mcp.tool_search import SEARCH_TOOL

SEARCH_EVENT = "mcp.search"
MAX_QUERY_RECORDED = 500  # the longest query search_tools takes


async def audited_search(
    answer: Callable[[], Awaitable[types.CallToolResult]],
    arguments: Mapping[str, Any] | None,
    *,
    caller: Caller,
    where: str,
    trace_id: str,
    private: bool,
    record: Callable[[AuditEvent], Awaitable[None]],
) -> types.CallToolResult:
    """``answer()``, the search's result, once its record is kept."""
    started = time.perf_counter()
    result = await answer()
    found = (result.structured_content or {}).get("tools")
    refused = bool(result.is_error) or not isinstance(found, list)
    query = (arguments or {}).get("query")
    detail = _refusal(result) if refused else f"{len(found or [])} found"
    if not private and isinstance(query, str):
        detail += f"; query: {query[:MAX_QUERY_RECORDED]!r}"
    await record(
        AuditEvent(
            event=SEARCH_EVENT,
            trace_id=trace_id,
            subject=caller.subject,
            subject_issuer=caller.issuer,
            client_id=caller.client_id,
            actors=caller.actors,
            target=where,
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
