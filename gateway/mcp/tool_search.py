"""Tool search: the gateway's own `switchboard__search_tools` (and, for a
virtual server in progressive-disclosure mode, `switchboard__call_tool`).

A client offered hundreds of tools degrades with all of them in context. It
can instead ask for the few that fit a task: the query is ranked (BM25F,
`registry.tool_ranker`, fused with an optional semantic leg) over every
tool's name, title, description and parameters as the database holds them
(`registry.tool_index`), and the answer holds only tools the caller's own
listing offers here -- the same policy decisions and virtual
server as `tools/list`, never a tool the caller could not call. A set whose
``tool_search`` is ``only`` lists just these two tools: the client finds a
tool, then calls it by name through `switchboard__call_tool`, which is the
ordinary call of that tool (decided, held for approval, recorded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import mcp_types as types
from mcp.shared.inbound import X_MCP_HEADER_KEY

from gateway.delegation.audit_records import AuditEvent
from gateway.federation.federated_tools import FederatedTool
from gateway.federation.federation import McpFederation
from gateway.mcp.agent_tools import AgentSkillTools
from gateway.mcp.approvals import STATUS_TOOL
from gateway.mcp.listing_names import ListingNames
from gateway.mcp.per_caller import same_objects
from registry.mcp_sets import ToolSearchMode
from registry.tool_index import SqlToolIndex, ToolDocument, document

logger = logging.getLogger(__name__)

SEARCH_TOOL = "switchboard__search_tools"
CALL_TOOL = "switchboard__call_tool"
MAX_QUERY = 500
DEFAULT_LIMIT = 5
MAX_LIMIT = 20

_FOUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "inputSchema": {"type": "object"},
                },
                "required": ["name", "inputSchema"],
            },
        }
    },
    "required": ["tools"],
}
SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_QUERY,
            "description": "what you want to do, in a few words",
        },
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": DEFAULT_LIMIT,
            "description": "how many tools at most",
        },
    },
    "required": ["query"],
    "additionalProperties": False,
}
CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "a name search_tools gave"},
        "arguments": {"type": "object", "description": "the tool's arguments, per its inputSchema"},
    },
    "required": ["name"],
    "additionalProperties": False,
}
SEARCH_TOOL_DEFINITION = types.Tool(
    name=SEARCH_TOOL,
    title="Search tools",
    description=(
        "Find the tools for a task among every tool you may call here, best "
        "match first, each with its input schema. Use it instead of reading "
        "the whole tool list."
    ),
    input_schema=SEARCH_SCHEMA,
    output_schema=_FOUND_SCHEMA,
    annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
CALL_TOOL_DEFINITION = types.Tool(
    name=CALL_TOOL,
    title="Call a tool",
    description=(
        f"Call a tool {SEARCH_TOOL} found, by its name, with its arguments. "
        "The answer is that tool's own."
    ),
    input_schema=CALL_SCHEMA,
)

# The objects the catalog is worked out from (compared by identity: a
# replaced snapshot means the catalog changed), and how to work out its
# documents (only when it did).
Catalog = tuple[tuple[object, ...], Callable[[], Sequence[ToolDocument]]]
# Even with nothing changed here, the index is brought in step this often:
# another replica that synced an older catalog may have removed a tool.
RESYNC_SECONDS = 60.0
PRUNE_AFTER_SECONDS = 60.0


class SearchRefused(ValueError):
    """The arguments are not a search (said to the caller as a tool error)."""


def search_arguments(arguments: Mapping[str, Any] | None) -> tuple[str, int]:
    arguments = arguments or {}
    query, limit = arguments.get("query"), arguments.get("limit", DEFAULT_LIMIT)
    unknown = set(arguments) - {"query", "limit"}
    if unknown:
        raise SearchRefused(f"unknown arguments: {', '.join(sorted(unknown))}")
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY:
        raise SearchRefused(f"query: a string of 1 to {MAX_QUERY} characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise SearchRefused(f"limit: an integer from 1 to {MAX_LIMIT}")
    return query, limit


def call_arguments(arguments: Mapping[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    arguments = arguments or {}
    name, inner = arguments.get("name"), arguments.get("arguments")
    unknown = set(arguments) - {"name", "arguments"}
    if unknown:
        raise SearchRefused(f"unknown arguments: {', '.join(sorted(unknown))}")
    if not isinstance(name, str) or not name:
        raise SearchRefused("name: the name of a tool search_tools found")
    if inner is not None and not isinstance(inner, dict):
        raise SearchRefused("arguments: an object")
    return name, inner


class ToolSearch:
    """Ranks a caller's tools for a query through the index, kept in step
    with the catalog the first time a search sees the catalog changed (and
    at least every `RESYNC_SECONDS` of searching)."""

    def __init__(
        self,
        index: SqlToolIndex,
        catalog: Callable[[], Awaitable[Catalog]],
        *,
        record: Callable[[AuditEvent], Awaitable[None]] | None = None,
        private_queries: bool = False,
    ) -> None:
        self._index = index
        self._catalog = catalog
        # Where each search's audit record goes (`gateway.mcp.search_audit`),
        # and whether it leaves the query out.
        self.record = record
        self.private_queries = private_queries
        self._synced: tuple[object, ...] = ()
        self._synced_at = 0.0
        self._syncing = asyncio.Lock()
        self._resync: asyncio.Task[None] | None = None
        self._documents: tuple[tuple[object, ...], Sequence[ToolDocument]] | None = None
        # Names the index holds that the catalog no longer has, since when.
        self._absent: dict[str, float] = {}
        self._listings = ListingNames((SEARCH_TOOL, CALL_TOOL))

    async def search(
        self, query: str, offered: Sequence[types.Tool], limit: int
    ) -> list[types.Tool]:
        """The best ``limit`` of ``offered`` (the caller's listing here) for
        ``query``; the gateway's own tools are never among them."""
        await self._in_step()
        mine = self._listings.of(offered)  # (`gateway.mcp.listing_names`)
        ranked = await self._index.search(query, mine.names, limit)
        return [mine.by_name[name] for name, _score in ranked if name in mine.by_name]

    async def catch_up(self) -> None:
        """The index brought in step with the catalog now (an admin's change:
        `McpFederation.changed`), not at the next search."""
        await self._in_step()

    async def _in_step(self) -> None:
        key, _documents = await self._catalog()
        if same_objects(key, self._synced):
            # The catalog did not change here: the periodic check for
            # another replica's removals runs beside the searches, which
            # the index as it stands answers meanwhile (reading every
            # document's digest would stall each of them).
            due = time.monotonic() - self._synced_at >= RESYNC_SECONDS
            if due and (self._resync is None or self._resync.done()):
                self._resync = asyncio.create_task(self._bring_in_step(force=True))
            return
        await self._bring_in_step()

    async def _bring_in_step(self, *, force: bool = False) -> None:
        async with self._syncing:
            key, documents = await self._catalog()
            fresh = time.monotonic() - self._synced_at < RESYNC_SECONDS
            if same_objects(key, self._synced) and (fresh or not force):
                return
            try:
                await self._sync(key, documents)
            except Exception:  # the index as it is still answers; the next search tries again
                logger.warning("tool search: the index could not be brought in step", exc_info=True)

    async def _sync(
        self, key: tuple[object, ...], documents: Callable[[], Sequence[ToolDocument]]
    ) -> None:
        if self._documents is None or not same_objects(self._documents[0], key):
            self._documents = (key, documents())  # worked out once per catalog
        wanted = self._documents[1]
        # Only what differs from what the ranker holds is written: the
        # rest is already there, as every replica wrote it.
        loaded = self._index.loaded
        await self._index.put([d for d in wanted if loaded.get(d.name) != d.digest])
        held = await self._index.refresh()
        # A tool the catalog lost is removed only once it has stayed lost
        # for a while: a replica whose catalog is a moment old must not
        # remove what another has just added.
        now = time.monotonic()
        names = {d.name for d in wanted}
        self._absent = {n: self._absent.get(n, now) for n in held if n not in names}
        gone = [n for n, since in self._absent.items() if now - since >= PRUNE_AFTER_SECONDS]
        if gone:
            await self._index.remove(gone)
            for name in gone:
                del self._absent[name]
        if not same_objects(key, self._synced):
            # Listings of the tools replaced are not kept alive by their maps.
            self._listings.clear()
        self._synced, self._synced_at = key, now


def catalog_of(
    federation: Callable[[], McpFederation], skills: Callable[[], AgentSkillTools | None]
) -> Callable[[], Awaitable[Catalog]]:
    """The catalog tool search indexes: every federated tool that claims its
    name and every agent's every skill, whoever may call them."""

    # Each federated tool's document, worked out once per tool object (a
    # catalog that moved keeps the very objects of the servers that did not).
    kept: dict[str, tuple[FederatedTool, ToolDocument]] = {}

    def document_of(t: FederatedTool) -> ToolDocument:
        known = kept.get(t.name)
        if known is not None and known[0] is t:
            return known[1]
        definition = t.definition
        made = document(
            t.name,
            definition.get("title"),
            definition.get("description"),
            definition.get("inputSchema"),
        )
        kept[t.name] = (t, made)
        return made

    async def catalog() -> Catalog:
        snapshot = await federation().snapshot()
        agent_tools = skills()
        skills_key, every_skill = await agent_tools.every_tool() if agent_tools else (None, ())

        def documents() -> list[ToolDocument]:
            found = {t.name: document_of(t) for t in snapshot.values() if t.withheld is None}
            for name in [n for n in kept if n not in found]:
                del kept[name]
            for s in every_skill:
                found.setdefault(
                    s.name,
                    document(
                        s.name,
                        s.tool.title,
                        s.tool.description,
                        s.tool.input_schema,
                        extra=(*s.tags, *s.examples),
                    ),
                )
            return list(found.values())

        return (snapshot, skills_key), documents

    return catalog


def with_search(offered: list[types.Tool], mode: ToolSearchMode) -> list[types.Tool]:
    """A `tools/list` answer with tool search as ``mode`` has it (first, so
    that a paging client meets it on the first page)."""
    if mode == "on":
        return [SEARCH_TOOL_DEFINITION, *offered]
    if mode == "only":  # and the status of a held call, which it will need
        held = [t for t in offered if t.name == STATUS_TOOL]
        return [SEARCH_TOOL_DEFINITION, CALL_TOOL_DEFINITION, *held]
    return offered


def takes_headers(schema: Mapping[str, Any] | None) -> bool:
    """Whether a tool's arguments are mirrored in `Mcp-Param-*` headers
    (2026-07-28, ``x-mcp-header``): the SDK checks them against the name
    the request says, which through `switchboard__call_tool` is not the
    tool's, so such a tool is called by its own name."""
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return isinstance(properties, Mapping) and any(
        isinstance(spec, Mapping) and X_MCP_HEADER_KEY in spec for spec in properties.values()
    )


def own_schema(name: str) -> Mapping[str, Any] | None:
    return {SEARCH_TOOL: SEARCH_SCHEMA, CALL_TOOL: CALL_SCHEMA}.get(name)


async def search_answer(
    search: ToolSearch,
    params: types.CallToolRequestParams,
    offered: Callable[[], Awaitable[Sequence[types.Tool]]],
) -> types.CallToolResult:
    """``offered``: the caller's listing here, worked out once the arguments
    are known to be a search."""
    try:
        query, limit = search_arguments(params.arguments)
    except SearchRefused as refused:
        return refused_result(f"{SEARCH_TOOL}: {refused}")
    return found_result(await search.search(query, await offered(), limit))


def unwrapped(
    params: types.CallToolRequestParams,
) -> types.CallToolRequestParams | types.CallToolResult:
    """`switchboard__call_tool`'s call as the call of the tool it names (its
    request state and answers go with it: they are that tool's), or the
    tool error its arguments earn."""
    try:
        name, arguments = call_arguments(params.arguments)
    except SearchRefused as refused:
        return refused_result(f"{CALL_TOOL}: {refused}")
    return params.model_copy(update={"name": name, "arguments": arguments})


def found_result(tools: Sequence[types.Tool]) -> types.CallToolResult:
    # Whole definitions, as tools/list gives them: annotations, output
    # schema, an MCP App's `_meta` and icons included.
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    structured = {"tools": listed}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(structured))],
        structured_content=structured,
    )


def refused_result(reason: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=reason)], is_error=True
    )
